// The SDK against a real relay (one relay for this file, one agent per test).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { AuthenticationError, ConnectionError, TimeoutError, WebhookRelay } from '@powerlobster/webhook';

import { Proxy, TestRelay, next, until, within } from './support/relay.mjs';

/** Each test gives up after a minute instead of hanging the run. */
const LIMIT = { timeout: 60_000 };

let relay;
before(async () => {
  relay = await TestRelay.start();
});
after(async () => {
  await relay?.stop();
});

/** A client for `agent`, closed when the test ends. */
function client(t, agent, options = {}) {
  const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, ...options });
  t.after(() => sdk.close());
  return sdk;
}

/** The relay's view of one event (status, attempts, attempt_history). */
async function eventOnRelay(agent, id) {
  const { status, body } = await relay.agentApi(agent.api_key, 'GET', `/api/v1/agent/events/${id}`);
  assert.equal(status, 200);
  return body;
}

function delivered(agent, id, what = `event ${id} delivered`) {
  return until(async () => (await eventOnRelay(agent, id)).status === 'delivered', { what });
}

test("the issue's snippet receives a signed webhook: payload and exact body", LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const logged = t.mock.method(console, 'log', () => {});
  process.env.POWERLOBSTER_API_KEY = agent.api_key;
  t.after(() => delete process.env.POWERLOBSTER_API_KEY);

  // The snippet, with the local relay's ws:// URL.
  const sdk = new WebhookRelay({ relayUrl: relay.url.replace('http://', 'ws://'), apiKey: process.env.POWERLOBSTER_API_KEY });
  sdk.on('webhook', async (event) => {
    if (event.payload.event === 'message.received') console.log('New message:', event.payload.data);
  });
  sdk.on('connected', (info) => console.log('Connected! Webhook URL:', info.webhookUrl));
  t.after(() => sdk.close());
  const seen = next(sdk, 'webhook');
  const info = await sdk.connect();

  assert.equal(info.webhookUrl, agent.webhook_url);
  assert.equal(info.agentId, agent.agent_id);
  assert.equal(info.relayId, agent.relay_id);
  assert.match(info.sessionId, /\S/);
  assert.equal(sdk.state, 'connected');

  // Spacing, key order and non-ASCII kept byte for byte.
  const body = '{"event":"message.received",  "data":{"from":"ada","text":"h\u00e9llo \ud83e\udd9e"}}';
  const sent = await relay.send(agent.webhook_url, body, { contentType: 'application/json' });
  const event = await seen;
  assert.equal(event.id, sent.id);
  assert.equal(event.type, 'message.received');
  assert.equal(event.attempt, 1);
  assert.equal(event.replay, false);
  assert.ok(event.receivedAt instanceof Date && Math.abs(event.receivedAt - Date.now()) < 60_000);
  assert.deepEqual(event.body, Buffer.from(body));
  assert.equal(event.rawBody, event.body);
  assert.deepEqual(event.payload, { event: 'message.received', data: { from: 'ada', text: 'h\u00e9llo \ud83e\udd9e' } });
  assert.equal(event.headers.get('Webhook-Id'), sent.webhookId);
  assert.equal(event.headers.get('content-type'), 'application/json');
  await delivered(agent, sent.id);

  const lines = logged.mock.calls.map((call) => call.arguments);
  assert.deepEqual(lines[0], ['Connected! Webhook URL:', agent.webhook_url]);
  assert.deepEqual(lines[1], ['New message:', { from: 'ada', text: 'h\u00e9llo \ud83e\udd9e' }]);
});

test('a throwing handler nacks; the event comes back with attempt 2', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  const attempts = [];
  const errors = [];
  sdk.on('error', (err) => errors.push(err));
  sdk.on('webhook', (event) => {
    attempts.push(event.attempt);
    if (event.attempt === 1) throw new Error('database is down');
  });
  await sdk.connect();
  const sent = await relay.send(agent.webhook_url, { type: 'order.paid' });
  await until(() => attempts.length === 2, { what: 'the redelivery' });
  assert.deepEqual(attempts, [1, 2]);
  await delivered(agent, sent.id);
  const onRelay = await eventOnRelay(agent, sent.id);
  assert.equal(onRelay.attempt_history[0].outcome, 'nacked');
  assert.equal(onRelay.attempt_history[0].error, 'database is down');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].name, 'HandlerError');
  assert.equal(errors[0].eventId, sent.id);
  assert.equal(errors[0].cause.message, 'database is down');
});

test('events sent while disconnected arrive after connect(), in order', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await relay.send(agent.webhook_url, { type: 'offline.test', n: i })).id);
  const sdk = client(t, agent);
  const got = [];
  sdk.on('webhook', (event) => {
    got.push(event.id);
  });
  await sdk.connect();
  await until(() => got.length === 3, { what: 'the 3 queued events' });
  assert.deepEqual(got, ids);
});

test('a revoked key: connect() rejects with AuthenticationError and does not retry', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  await relay.revoke(agent.agent_id);
  const refusedBefore = await relay.metric('lobster_http_requests_total', 'status="401"');
  const sdk = client(t, agent);
  const reconnecting = [];
  sdk.on('reconnecting', (info) => reconnecting.push(info));
  const err = await within(5_000, 'connect() to reject', sdk.connect().then(() => null, (e) => e));
  assert.ok(err instanceof AuthenticationError, String(err));
  assert.equal(err.status, 401);
  assert.equal(err.code, 'unauthorized');
  assert.match(err.message, /API key/);
  assert.equal(sdk.state, 'closed');
  // No retry loop: nothing is scheduled, and after longer than the first
  // retry's ceiling (250 ms) the relay still saw exactly one attempt. This
  // negative check is the one place a test has to let time pass.
  await new Promise((r) => setTimeout(r, 1_000));
  assert.deepEqual(reconnecting, []);
  assert.equal(await relay.metric('lobster_http_requests_total', 'status="401"'), refusedBefore + 1);
});

test("revoked during a session: 'error' and 'disconnected' with willReconnect false, no reconnect", LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  const reconnecting = [];
  sdk.on('reconnecting', (info) => reconnecting.push(info));
  await sdk.connect();
  const error = next(sdk, 'error');
  const disconnected = next(sdk, 'disconnected');
  await relay.revoke(agent.agent_id);
  const [err, info] = await Promise.all([error, disconnected]);
  assert.ok(err instanceof AuthenticationError);
  assert.equal(err.closeCode, 4003);
  assert.equal(err.code, 'agent_revoked');
  assert.equal(info.code, 4003);
  assert.equal(info.willReconnect, false);
  assert.equal(sdk.state, 'closed');
  assert.deepEqual(reconnecting, []);
});

test('maxConcurrency 1 handles events one at a time, in order', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push((await relay.send(agent.webhook_url, { type: 'seq', n: i })).id);
  const sdk = client(t, agent, { maxConcurrency: 1 });
  const got = [];
  let running = 0;
  let most = 0;
  sdk.on('webhook', async (event) => {
    running++;
    most = Math.max(most, running);
    // Uneven handler times would reorder events if two ran at once.
    await new Promise((r) => setTimeout(r, (event.payload.n * 7) % 5));
    got.push(event.id);
    running--;
  });
  await sdk.connect();
  await until(() => got.length === 20, { what: '20 events' });
  assert.deepEqual(got, ids);
  assert.equal(most, 1);
});

test('the default maxConcurrency runs handlers side by side', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  let running = 0;
  let release;
  const allIn = new Promise((r) => (release = r));
  sdk.on('webhook', async () => {
    if (++running === 5) release();
    await allIn; // resolves only once five handlers run at the same time
  });
  await sdk.connect();
  for (let i = 0; i < 5; i++) await relay.send(agent.webhook_url, { type: 'parallel', n: i });
  await within(10_000, 'five handlers at once', allIn);
});

test('a body that is not JSON (nor UTF-8): payload null, exact bytes', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  const seen = next(sdk, 'webhook');
  sdk.on('webhook', () => {});
  await sdk.connect();
  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x7b, 0x22, 0x80, 0x0a, 0xc3]);
  const sent = await relay.send(agent.webhook_url, bytes, { contentType: 'application/octet-stream' });
  const event = await seen;
  assert.equal(event.id, sent.id);
  assert.equal(event.payload, null);
  assert.deepEqual(event.body, bytes);
  assert.equal(event.headers.get('Content-Type'), 'application/octet-stream');
  // And UTF-8 text that is not JSON.
  const text = next(sdk, 'webhook');
  await relay.send(agent.webhook_url, 'hello, not json', { contentType: 'text/plain' });
  const textEvent = await text;
  assert.equal(textEvent.payload, null);
  assert.equal(textEvent.body.toString(), 'hello, not json');
  // And a large random body (half the relay's default limit).
  const large = randomBytes(512 * 1024);
  const big = next(sdk, 'webhook');
  await relay.send(agent.webhook_url, large, { contentType: 'application/octet-stream' });
  assert.ok((await big).body.equals(large));
});

test('wait(): resolves with a matching event, acked; rejects with TimeoutError', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  const started = Date.now();
  const err = await sdk.wait({ events: 'never.*', timeoutMs: 300 }).then(() => null, (e) => e);
  assert.ok(err instanceof TimeoutError, String(err));
  assert.equal(err.code, 'timeout');
  assert.ok(Date.now() - started >= 290);
  // wait() connected by itself; now one that resolves.
  assert.equal(sdk.state, 'connected');
  const waiting = sdk.wait({ events: ['payment.*'], timeoutMs: 10_000 });
  const sent = await relay.send(agent.webhook_url, { type: 'payment.succeeded', amount: 42 });
  const event = await waiting;
  assert.equal(event.id, sent.id);
  assert.equal(event.payload.amount, 42);
  await delivered(agent, sent.id);
});

test('the events filter: only matching types arrive; others stay queued', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const filtered = client(t, agent, { events: ['message.*'] });
  const got = [];
  filtered.on('webhook', (event) => {
    got.push(event.type);
  });
  await filtered.connect();
  const other = await relay.send(agent.webhook_url, { type: 'payment.done' });
  const wanted = await relay.send(agent.webhook_url, { type: 'message.received' });
  await delivered(agent, wanted.id);
  assert.deepEqual(got, ['message.received']);
  assert.equal((await eventOnRelay(agent, other.id)).status, 'pending');
  // An unfiltered session takes it.
  const everything = client(t, agent);
  const seen = next(everything, 'webhook');
  everything.on('webhook', () => {});
  await everything.connect();
  assert.equal((await seen).id, other.id);
  await delivered(agent, other.id);
  assert.deepEqual(got, ['message.received']);
});

test('a redelivery of a handled id is acked without the handler; a replay runs it again', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const proxy = await Proxy.start(relay.port);
  t.after(() => proxy.close());
  const sdk = client(t, agent, { relayUrl: proxy.url });
  const calls = [];
  let cut;
  const handlerStarted = new Promise((r) => (cut = r));
  sdk.on('webhook', async (event) => {
    calls.push({ attempt: event.attempt, replay: event.replay });
    if (calls.length === 1) {
      // Finish only after the connection is gone: the ack cannot be sent.
      const gone = next(sdk, 'disconnected');
      cut();
      await gone;
    }
  });
  await sdk.connect();
  const sent = await relay.send(agent.webhook_url, { type: 'dedupe.test' });
  await within(10_000, 'the handler', handlerStarted);
  proxy.cutAll();
  // The relay hands the unacked event out again (attempt 2) after the reconnect;
  // the SDK remembers handling it and acks without calling the handler.
  await until(async () => {
    const onRelay = await eventOnRelay(agent, sent.id);
    return onRelay.status === 'delivered' && onRelay.attempts === 2;
  }, { what: 'the redelivery to be acked' });
  assert.deepEqual(calls, [{ attempt: 1, replay: false }]);

  // An explicit replay is handed to the handler even though the id was handled.
  const replayed = await relay.agentApi(agent.api_key, 'POST', `/api/v1/agent/events/${sent.id}/replay`);
  assert.equal(replayed.status, 202);
  await until(() => calls.length === 2, { what: 'the replay to reach the handler' });
  assert.equal(calls[1].replay, true);
  assert.equal(calls[1].attempt, 3);
  await delivered(agent, sent.id);
});

test('a silent connection is dropped and re-established (heartbeat)', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const proxy = await Proxy.start(relay.port);
  t.after(() => proxy.close());
  const sdk = client(t, agent, { relayUrl: proxy.url, heartbeatIntervalMs: 100, idleTimeoutMs: 600 });
  await sdk.connect();
  proxy.freeze();
  const info = await next(sdk, 'disconnected', 5_000);
  assert.equal(info.willReconnect, true);
  assert.match(info.reason, /no frame, ping or pong/);
  proxy.thaw();
  await next(sdk, 'connected', 10_000);
  const seen = next(sdk, 'webhook');
  sdk.on('webhook', () => {});
  const sent = await relay.send(agent.webhook_url, { type: 'after.heartbeat' });
  assert.equal((await seen).id, sent.id);
});

test('close() lets handlers in flight finish and ack', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  let finish;
  const gate = new Promise((r) => (finish = r));
  const started = next(sdk, 'webhook');
  sdk.on('webhook', () => gate);
  await sdk.connect();
  const sent = await relay.send(agent.webhook_url, { type: 'slow' });
  await started;
  const disconnected = next(sdk, 'disconnected');
  let closed = false;
  const closing = sdk.close().then(() => (closed = true));
  assert.equal(sdk.state, 'closing');
  await new Promise((r) => setImmediate(r));
  assert.equal(closed, false);
  finish();
  await within(5_000, 'close()', closing);
  assert.equal(sdk.state, 'closed');
  const info = await disconnected;
  assert.equal(info.willReconnect, false);
  assert.equal(info.reason, 'closed by the client');
  await delivered(agent, sent.id);
});

test('connect() to nothing: ConnectionError (at once with reconnect: false, else after connectTimeoutMs)', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const port = await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const once = client(t, agent, { relayUrl: `http://127.0.0.1:${port}`, reconnect: false });
  const err = await once.connect().then(() => null, (e) => e);
  assert.ok(err instanceof ConnectionError, String(err));
  assert.match(err.message, /ECONNREFUSED/);

  const patient = client(t, agent, { relayUrl: `http://127.0.0.1:${port}`, connectTimeoutMs: 800 });
  const retries = [];
  patient.on('reconnecting', (info) => retries.push(info));
  const started = Date.now();
  const late = await patient.connect().then(() => null, (e) => e);
  assert.ok(late instanceof ConnectionError, String(late));
  assert.match(late.message, /within 800 ms/);
  assert.ok(Date.now() - started >= 790);
  assert.ok(retries.length >= 1);
  assert.ok(retries.every((r) => r.delayMs < 10_000));
  assert.equal(patient.state, 'closed');

  // A URL that is not a relay's base URL: HTTP 404, not retried.
  const wrong = client(t, agent, { relayUrl: `${relay.url}/not-here` });
  const notFound = await within(5_000, 'connect() to reject', wrong.connect().then(() => null, (e) => e));
  assert.ok(notFound instanceof ConnectionError, String(notFound));
  assert.equal(notFound.status, 404);
  assert.equal(notFound.retryable, false);

  // A pattern the relay does not accept: HTTP 400 with the relay's reason, not retried.
  const badFilter = client(t, agent, { events: ['no spaces allowed'] });
  const refused = await within(5_000, 'connect() to reject', badFilter.connect().then(() => null, (e) => e));
  assert.ok(refused instanceof ConnectionError, String(refused));
  assert.equal(refused.status, 400);
  assert.equal(refused.code, 'invalid_events_filter');
  assert.equal(refused.retryable, false);
});

test("the relay answers the SDK's pings (no drop with a short idle timeout)", LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent, { heartbeatIntervalMs: 100, idleTimeoutMs: 500 });
  const drops = [];
  sdk.on('disconnected', (info) => drops.push(info));
  await sdk.connect();
  // Negative check: three idle timeouts' worth of pings, each answered by a pong.
  await new Promise((r) => setTimeout(r, 1_500));
  assert.deepEqual(drops, []);
  assert.equal(sdk.state, 'connected');
});
