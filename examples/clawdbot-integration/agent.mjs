// Clawdbot as an agent using the SDK: message.received webhooks arrive over
// the relay's WebSocket; each one's signature is checked against the
// sender's secret (end to end: the relay is not trusted), then the bot
// answers. A handler that throws is retried by the relay.
import { WebhookRelay, verifySignature } from '@powerlobster/webhook';
import { handleMessage } from './clawdbot.mjs';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) throw new Error("set WEBHOOK_SECRET to the sender's signing secret (whsec_...)");

const relay = new WebhookRelay({
  relayUrl: process.env.LOBSTER_RELAY_URL ?? 'http://127.0.0.1:8080',
  apiKey: process.env.POWERLOBSTER_API_KEY,
  events: ['message.received'],
});
relay.on('webhook', async (event) => {
  if (!verifySignature(event, secret)) {
    console.warn(`dropped ${event.id}: its signature does not verify with WEBHOOK_SECRET`);
    return; // acked: a forgery does not get better by retrying
  }
  const reply = await handleMessage(event.payload.data);
  console.log(`[${event.id}] ${event.payload.data?.from ?? 'someone'}: ${event.payload.data?.text} -> ${reply}`);
});
relay.on('connected', (info) => console.log('Clawdbot connected. Webhook URL:', info.webhookUrl));
await relay.connect();
