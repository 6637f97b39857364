// Clawdbot behind the CLI, without dependencies: `lobster-relay listen
// --forward localhost:3000/webhooks` POSTs each event here with the raw body
// and the sender's own signature headers. We verify the Standard Webhooks
// signature on those exact bytes, call the bot, and answer 2xx (the CLI
// acks) or anything else (the CLI nacks; the relay retries).
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { handleMessage } from './clawdbot.mjs';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) throw new Error("set WEBHOOK_SECRET to the sender's signing secret (whsec_...)");
const port = Number(process.env.PORT ?? 3000);

// Standard Webhooks: HMAC-SHA256 over `${id}.${timestamp}.${body}`, keyed with
// the base64 part of whsec_...; the header may list several `v1,<base64>`.
// No freshness check on the timestamp: the relay checked it on arrival, and
// an event may wait in its queue while this bot is offline.
function verified(headers, body) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
  return signatures.split(' ').some((entry) => {
    const [version, sig = ''] = entry.split(',');
    const given = Buffer.from(sig, 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

http
  .createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const eventId = req.headers['lobster-relay-event-id'] ?? '-';
    if (req.method !== 'POST' || req.url !== '/webhooks') return res.writeHead(404).end();
    if (!verified(req.headers, body)) {
      console.warn(`[${eventId}] signature does not verify with WEBHOOK_SECRET: 401`);
      return res.writeHead(401).end('bad signature');
    }
    try {
      const payload = JSON.parse(body.toString('utf8'));
      if (payload.event !== 'message.received') return res.writeHead(204).end(); // not for the bot: ack
      const reply = await handleMessage(payload.data);
      console.log(`[${eventId}] ${payload.data?.from ?? 'someone'}: ${payload.data?.text} -> ${reply}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reply }));
    } catch (err) {
      console.error(`[${eventId}] failed: ${err.message}`);
      res.writeHead(500).end(); // nack: the relay retries
    }
  })
  .listen(port, '127.0.0.1', () => console.log(`Clawdbot listening on http://127.0.0.1:${port}/webhooks`));
