import { WebhookRelay } from '@powerlobster/webhook';
const relay = new WebhookRelay({ relayUrl: process.env.LOBSTER_RELAY_URL ?? 'http://127.0.0.1:8080', apiKey: process.env.POWERLOBSTER_API_KEY });
relay.on('webhook', async (event) => {
  if (event.payload.event === 'message.received') console.log('New message:', event.payload.data);
});
relay.on('connected', (info) => console.log('Connected! Webhook URL:', info.webhookUrl));
await relay.connect();
