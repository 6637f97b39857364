// The HTTP transports (Server-Sent Events, long-poll) and `transport: 'auto'`
// against a real relay, and the fallback through a real proxy (tinyproxy)
// that refuses the WebSocket's tunnel.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { AuthenticationError, ProxyError, WebhookRelay } from '@powerlobster/webhook';

import { TestRelay, next, until } from './support/relay.mjs';
import { BufferingNginx } from './support/nginx.mjs';
import { Squid } from './support/squid.mjs';
import { TinyProxy, deadPort } from './support/tinyproxy.mjs';

const LIMIT = { timeout: 60_000 };
const USER = 'lobster';
const PASSWORD = 'pw-for_sse';
const ACKS_ROUTE = 'route="/api/v1/agent/stream/{session_id}/acks"';

let relay;
before(async () => {
  relay = await TestRelay.start();
});
after(async () => {
  await relay?.stop();
});

function client(t, agent, options = {}) {
  const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, proxy: false, ...options });
  t.after(() => sdk.close());
  return sdk;
}

async function eventOnRelay(agent, id) {
  const { status, body } = await relay.agentApi(agent.api_key, 'GET', `/api/v1/agent/events/${id}`);
  assert.equal(status, 200);
  return body;
}

for (const transport of ['sse', 'poll']) {
  test(`transport '${transport}': events arrive byte for byte with their headers, and are acked`, LIMIT, async (t) => {
    const agent = await relay.createAgent();
    const sdk = client(t, agent, { transport });
    const info = await sdk.connect();
    assert.equal(info.transport, transport);
    assert.equal(sdk.transport, transport);
    assert.equal(info.webhookUrl, agent.webhook_url);
    assert.equal(info.fallbackReason, undefined);

    // Bytes that are not UTF-8 (base64 on the wire), then JSON.
    const binary = Buffer.concat([randomBytes(300), Buffer.from([0xff, 0xfe, 0x00, 0x80])]);
    const seenBinary = next(sdk, 'webhook');
    const sentBinary = await relay.send(agent.webhook_url, binary);
    const gotBinary = await seenBinary;
    assert.equal(gotBinary.id, sentBinary.id);
    assert.ok(gotBinary.body.equals(binary), 'the binary body arrived byte for byte');
    assert.equal(gotBinary.headers.get('webhook-id'), sentBinary.webhookId);
    assert.equal(gotBinary.headers.get('content-type'), 'application/octet-stream');

    const text = '{"type":"message.received","text":"h\u00e9llo \ud83e\udd9e","n":1}';
    const seenText = next(sdk, 'webhook');
    const sentText = await relay.send(agent.webhook_url, text, { contentType: 'application/json' });
    const gotText = await seenText;
    assert.equal(gotText.body.toString('utf8'), text);
    assert.deepEqual(gotText.payload, JSON.parse(text));
    assert.equal(gotText.type, 'message.received');

    for (const id of [sentBinary.id, sentText.id]) {
      await until(async () => (await eventOnRelay(agent, id)).status === 'delivered', { what: `${id} delivered (acked by POST)` });
    }
  });

  test(`transport '${transport}': a throwing handler nacks, the relay retries, the retry is acked`, LIMIT, async (t) => {
    const agent = await relay.createAgent();
    const sdk = client(t, agent, { transport });
    const attempts = [];
    sdk.on('webhook', (event) => {
      attempts.push(event.attempt);
      if (event.attempt === 1) throw new Error('first try fails');
    });
    sdk.on('error', () => {}); // the HandlerError of the first try
    await sdk.connect();
    const sent = await relay.send(agent.webhook_url, { type: 'retry.me' });
    const history = await until(
      async () => {
        const event = await eventOnRelay(agent, sent.id);
        return event.status === 'delivered' ? event.attempt_history : null;
      },
      { what: 'the retried event to be delivered' },
    );
    assert.deepEqual(attempts, [1, 2]);
    assert.deepEqual(history.map((a) => a.outcome), ['nacked', 'delivered']);
    assert.equal(history[0].error, 'first try fails');
  });

  test(`transport '${transport}': events already queued are answered in batches (fewer acks requests than events)`, LIMIT, async (t) => {
    const agent = await relay.createAgent();
    const count = 40;
    const ids = [];
    for (let i = 0; i < count; i++) ids.push((await relay.send(agent.webhook_url, { type: 'batch', i })).id);
    const postsBefore = await relay.metric('lobster_http_requests_total', ACKS_ROUTE);
    const sdk = client(t, agent, { transport, maxConcurrency: 20 });
    const seen = new Set();
    sdk.on('webhook', (event) => seen.add(event.id));
    await sdk.connect();
    await until(async () => {
      const { body } = await relay.agentApi(agent.api_key, 'GET', `/api/v1/agent/events?limit=100&status=delivered`);
      return body.events.length === count;
    }, { what: `all ${count} events delivered` });
    assert.equal(seen.size, count);
    const posts = (await relay.metric('lobster_http_requests_total', ACKS_ROUTE)) - postsBefore;
    assert.ok(posts >= 1 && posts < count, `${posts} acks requests for ${count} events`);
  });
}

test('transport auto, direct: the WebSocket is used, no fallback', LIMIT, async (t) => {
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  let fallbacks = 0;
  sdk.on('fallback', () => fallbacks++);
  const info = await sdk.connect();
  assert.equal(info.transport, 'ws');
  assert.equal(sdk.transport, 'ws');
  assert.equal(fallbacks, 0);
});

test("transport auto: the relay's own 401 is not taken for a proxy (no fallback, AuthenticationError)", LIMIT, async (t) => {
  const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: `lrk_${'a'.repeat(59)}`, logger: null, proxy: false });
  t.after(() => sdk.close());
  const fallbacks = [];
  sdk.on('fallback', (info) => fallbacks.push(info));
  const err = await sdk.connect().then(() => assert.fail('connected with a bad key'), (e) => e);
  assert.ok(err instanceof AuthenticationError, `${err?.name}: ${err?.message}`);
  assert.deepEqual(fallbacks, []);
});

test('transport auto through a proxy that refuses the tunnel (tinyproxy, 403): falls back to SSE, says why, delivers; reconnects stay on SSE', LIMIT, async (t) => {
  // CONNECT is allowed to port 1 only: the WebSocket's tunnel to the relay is
  // refused; plain forward requests (SSE, acks) pass.
  const proxy = await TinyProxy.start({ connectPorts: [1] });
  t.after(() => proxy.stop());
  const agent = await relay.createAgent();
  const lines = [];
  const record = (message) => lines.push(String(message));
  const sdk = client(t, agent, { proxy: proxy.url, logger: { info: record, warn: record } });
  const fallback = next(sdk, 'fallback');
  const info = await sdk.connect();
  const { previous, transport, reason } = await fallback;
  assert.equal(previous, 'ws');
  assert.equal(transport, 'sse');
  assert.match(reason, /refused the tunnel for the WebSocket upgrade \(HTTP 403/);
  assert.equal(info.transport, 'sse');
  assert.equal(info.fallbackReason, reason);
  assert.equal(sdk.transport, 'sse');
  assert.ok(lines.some((line) => line.includes('falling back to SSE') && line.includes('HTTP 403')), lines.join('\n'));
  assert.ok(proxy.log().includes('GET http://127.0.0.1:'), 'the SSE request went through the proxy');

  const seen = next(sdk, 'webhook');
  const sent = await relay.send(agent.webhook_url, { type: 'via.sse' });
  assert.equal((await seen).id, sent.id);
  await until(async () => (await eventOnRelay(agent, sent.id)).status === 'delivered', { what: 'the ack through the proxy' });

  // The proxy restarts: the stream drops and the client comes back on SSE directly.
  let fallbacks = 0;
  sdk.on('fallback', () => fallbacks++);
  const dropped = next(sdk, 'disconnected', 20_000);
  const back = next(sdk, 'connected', 20_000);
  const connectsBefore = proxy.connects(`127.0.0.1:${relay.port}`);
  await proxy.restart({});
  assert.equal((await dropped).willReconnect, true);
  assert.equal((await back).transport, 'sse');
  assert.equal(fallbacks, 0);
  assert.equal(proxy.connects(`127.0.0.1:${relay.port}`), connectsBefore, 'no new WebSocket tunnel was tried');
});

test('SSE and long-poll through a proxy with basic auth (forward requests, Proxy-Authorization)', LIMIT, async (t) => {
  const proxy = await TinyProxy.start({ connectPorts: [relay.port], auth: [USER, PASSWORD] });
  t.after(() => proxy.stop());
  for (const transport of ['sse', 'poll']) {
    const agent = await relay.createAgent();
    const sdk = client(t, agent, { transport, proxy: proxy.urlWith(USER, PASSWORD) });
    await sdk.connect();
    const seen = next(sdk, 'webhook');
    const sent = await relay.send(agent.webhook_url, { type: `auth.${transport}` });
    assert.equal((await seen).id, sent.id);
    await until(async () => (await eventOnRelay(agent, sent.id)).status === 'delivered', { what: `the ${transport} ack through the proxy` });
    await sdk.close();
  }
  assert.ok(proxy.log().includes('/api/v1/agent/poll'), 'the polls went through the proxy');
});

test('revocation ends an SSE and a long-poll session with an AuthenticationError, no reconnect', LIMIT, async (t) => {
  for (const transport of ['sse', 'poll']) {
    const agent = await relay.createAgent();
    const sdk = client(t, agent, { transport });
    await sdk.connect();
    const dropped = next(sdk, 'disconnected', 20_000);
    const errored = next(sdk, 'error', 20_000);
    await relay.revoke(agent.agent_id);
    const info = await dropped;
    assert.equal(info.willReconnect, false, `${transport}: ${info.reason}`);
    const err = await errored;
    assert.ok(err instanceof AuthenticationError, `${transport}: ${err?.name}: ${err?.message}`);
    await until(() => sdk.state === 'closed', { what: `the ${transport} client to stop` });
  }
});

test('transport auto behind a buffering reverse proxy (nginx): WebSocket refused, SSE held back, long-poll delivers', LIMIT, async (t) => {
  const nginx = await BufferingNginx.start(relay.port);
  t.after(() => nginx.stop());
  const agent = await relay.createAgent();
  const sdk = client(t, agent, { relayUrl: nginx.url, sseReadyTimeoutMs: 1_500 });
  const fallbacks = [];
  sdk.on('fallback', (info) => fallbacks.push(info));
  const info = await sdk.connect();
  assert.deepEqual(fallbacks.map((f) => `${f.previous}>${f.transport}`), ['ws>sse', 'sse>poll']);
  assert.match(fallbacks[0].reason, /WebSocket upgrade was refused \(HTTP 400 websocket_required/);
  assert.match(fallbacks[1].reason, /no ready message on the SSE stream within 1500 ms/);
  assert.equal(info.transport, 'poll');
  assert.equal(info.fallbackReason, fallbacks[1].reason);

  const seen = next(sdk, 'webhook');
  const sent = await relay.send(agent.webhook_url, { type: 'via.poll' });
  assert.equal((await seen).id, sent.id);
  await until(async () => (await eventOnRelay(agent, sent.id)).status === 'delivered', { what: 'the ack through nginx' });
  assert.ok(nginx.accessLog().includes('/api/v1/agent/poll'), 'the polls went through nginx');
});

for (const transport of ['sse', 'poll']) {
  test(`transport '${transport}': an unreachable proxy is a ProxyError (proxy_unreachable), its password not shown`, LIMIT, async (t) => {
    const agent = await relay.createAgent();
    const sdk = client(t, agent, { transport, proxy: `http://${USER}:hunter2@127.0.0.1:${await deadPort()}`, reconnect: false });
    const err = await sdk.connect().then(() => assert.fail('connected'), (e) => e);
    assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
    assert.equal(err.code, 'proxy_unreachable');
    assert.ok(!err.message.includes('hunter2'));
  });
}

test('transport auto through squid (CONNECT only to 443, as corporate proxies): falls back to SSE and delivers', LIMIT, async (t) => {
  const squid = await Squid.start();
  t.after(() => squid.stop());
  const agent = await relay.createAgent();
  const sdk = client(t, agent, { proxy: squid.url });
  const fallbacks = [];
  sdk.on('fallback', (info) => fallbacks.push(info));
  const info = await sdk.connect();
  assert.deepEqual(fallbacks.map((f) => `${f.previous}>${f.transport}`), ['ws>sse']);
  assert.match(fallbacks[0].reason, /refused the tunnel for the WebSocket upgrade \(HTTP 403/);
  assert.equal(info.transport, 'sse');
  const seen = next(sdk, 'webhook');
  const sent = await relay.send(agent.webhook_url, { type: 'via.squid' });
  assert.equal((await seen).id, sent.id);
  await until(async () => (await eventOnRelay(agent, sent.id)).status === 'delivered', { what: 'the ack through squid' });
  await until(() => squid.accessLog().includes('/acks'), { what: "the acks request in squid's access log" });
  assert.match(squid.accessLog(), /TCP_DENIED\/403 \d+ CONNECT 127\.0\.0\.1:/);
});
