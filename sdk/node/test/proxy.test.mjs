// The SDK through a real HTTP proxy (tinyproxy on loopback, CONNECT tunnels)
// to a real relay: from the environment, from the option, with basic auth,
// bypassed by NO_PROXY, refused, unreachable, and TLS inside the tunnel.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ProxyError, WebhookRelay } from '@powerlobster/webhook';

import { TestRelay, next, sign, until } from './support/relay.mjs';
import { TinyProxy, deadPort } from './support/tinyproxy.mjs';

const LIMIT = { timeout: 60_000 };
const USER = 'lobster';
const PASSWORD = 's3cret-pw_1';
const PROXY_VARS = ['HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY'].flatMap((n) => [n, n.toLowerCase()]);

let relay;
let open; // tinyproxy without auth
let guarded; // tinyproxy with basic auth
let nowhere; // a proxy URL nothing listens on
before(async () => {
  relay = await TestRelay.start();
  open = await TinyProxy.start({ connectPorts: [relay.port] });
  guarded = await TinyProxy.start({ connectPorts: [relay.port], auth: [USER, PASSWORD] });
  nowhere = `http://127.0.0.1:${await deadPort()}`;
});
after(async () => {
  await open?.stop();
  await guarded?.stop();
  await relay?.stop();
});

/** Sets the proxy variables for one test (all others unset), restored after it. */
function proxyEnv(t, vars) {
  const saved = Object.fromEntries(PROXY_VARS.map((name) => [name, process.env[name]]));
  for (const name of PROXY_VARS) delete process.env[name];
  Object.assign(process.env, vars);
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

/** Every line the SDK logs, at every level. */
function recordingLogger() {
  const lines = [];
  const record = (message, ...rest) => lines.push([message, ...rest].map(String).join(' '));
  return { lines, logger: { debug: record, info: record, warn: record, error: record } };
}

function client(t, agent, options = {}) {
  const sdk = new WebhookRelay({ relayUrl: relay.url, apiKey: agent.api_key, logger: null, ...options });
  t.after(() => sdk.close());
  return sdk;
}

/** Connects, sends one webhook, and checks it arrives whole. */
async function deliversOne(sdk, agent) {
  const seen = next(sdk, 'webhook');
  await sdk.connect();
  const body = { event: 'message.received', data: { text: `through ${sdk.proxy ?? 'no proxy'}` } };
  const sent = await relay.send(agent.webhook_url, body);
  const event = await seen;
  assert.equal(event.id, sent.id);
  assert.deepEqual(event.payload, body);
}

const target = () => `127.0.0.1:${relay.port}`;

test('HTTP_PROXY: the session goes through the proxy (its log shows the CONNECT) and an event arrives', LIMIT, async (t) => {
  proxyEnv(t, { HTTP_PROXY: open.url });
  const agent = await relay.createAgent();
  const before = open.connects(target());
  const sdk = client(t, agent);
  assert.equal(sdk.proxy, open.url);
  await deliversOne(sdk, agent);
  await until(() => open.connects(target()) === before + 1, { what: 'the CONNECT in the tinyproxy log' });
});

test('ALL_PROXY (lowercase) is the fallback when HTTP_PROXY is unset', LIMIT, async (t) => {
  proxyEnv(t, { all_proxy: open.url.replace('http://', '') });
  const agent = await relay.createAgent();
  const before = open.connects(target());
  const sdk = client(t, agent);
  assert.equal(sdk.proxy, open.url);
  await deliversOne(sdk, agent);
  await until(() => open.connects(target()) === before + 1, { what: 'the CONNECT in the tinyproxy log' });
});

test('basic auth: user:pass@ in the proxy URL opens the tunnel; the password is never logged', LIMIT, async (t) => {
  proxyEnv(t, { HTTP_PROXY: guarded.urlWith(USER, PASSWORD) });
  const agent = await relay.createAgent();
  const { lines, logger } = recordingLogger();
  const sdk = client(t, agent, { logger });
  assert.equal(sdk.proxy, guarded.url, 'relay.proxy names the proxy without credentials');
  await deliversOne(sdk, agent);
  assert.equal(sdk.transport, 'ws', 'the WebSocket itself, in the CONNECT tunnel');
  assert.ok(guarded.connects(target()) >= 1);
  assert.ok(lines.some((line) => line.includes(guarded.url)), `the proxy is named in the log: ${lines.join('\n')}`);
  assert.ok(!lines.join('\n').includes(PASSWORD));
});

test('no credentials for a proxy that wants them: connect() rejects at once with proxy_auth_required (407), no retries', LIMIT, async (t) => {
  proxyEnv(t, {});
  const agent = await relay.createAgent();
  const sdk = client(t, agent, { proxy: guarded.url, connectTimeoutMs: 30_000 });
  let retries = 0;
  sdk.on('reconnecting', () => retries++);
  const started = Date.now();
  const err = await sdk.connect().then(
    () => assert.fail('connected without proxy credentials'),
    (e) => e,
  );
  assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
  assert.equal(err.code, 'proxy_auth_required');
  assert.equal(err.status, 407);
  assert.equal(err.proxy, guarded.url);
  assert.equal(err.retryable, false);
  assert.match(err.message, /wants credentials/);
  assert.equal(retries, 0);
  assert.ok(Date.now() - started < 10_000);
  assert.equal(sdk.state, 'closed');
});

test('wrong proxy password: proxy_auth_failed, the password is not in the message, no retries', LIMIT, async (t) => {
  proxyEnv(t, { HTTP_PROXY: guarded.urlWith(USER, 'not-the-password') });
  const agent = await relay.createAgent();
  const { lines, logger } = recordingLogger();
  const sdk = client(t, agent, { logger, connectTimeoutMs: 30_000 });
  let retries = 0;
  sdk.on('reconnecting', () => retries++);
  const err = await sdk.connect().then(
    () => assert.fail('connected with a wrong proxy password'),
    (e) => e,
  );
  assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
  assert.equal(err.code, 'proxy_auth_failed');
  assert.match(err.message, /refused the credentials in HTTP_PROXY/);
  assert.ok(!err.message.includes('not-the-password'));
  assert.ok(!lines.join('\n').includes('not-the-password'));
  assert.equal(retries, 0);
});

test('the proxy starts refusing the credentials during a session: error event, no reconnect loop', LIMIT, async (t) => {
  proxyEnv(t, {});
  const proxy = await TinyProxy.start({ connectPorts: [relay.port], auth: [USER, PASSWORD] });
  t.after(() => proxy.stop());
  const agent = await relay.createAgent();
  const sdk = client(t, agent, { proxy: proxy.urlWith(USER, PASSWORD) });
  await sdk.connect();
  const errored = next(sdk, 'error', 20_000);
  const dropped = next(sdk, 'disconnected', 20_000);
  // The proxy comes back with another password: the tunnel drops, the retry is refused.
  await proxy.restart({ auth: [USER, 'rotated-pw'] });
  assert.equal((await dropped).willReconnect, true);
  const err = await errored;
  assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
  assert.equal(err.code, 'proxy_auth_failed');
  await until(() => sdk.state === 'closed', { what: 'the client to stop' });
  let retries = 0;
  sdk.on('reconnecting', () => retries++);
  await new Promise((r) => setTimeout(r, 600)); // a retry would come within the 250 ms backoff ceiling
  assert.equal(retries, 0);
});

test('NO_PROXY lists the relay host: connected directly, the (dead) proxy is not used', LIMIT, async (t) => {
  proxyEnv(t, { HTTP_PROXY: nowhere, HTTPS_PROXY: nowhere, NO_PROXY: 'example.com, 127.0.0.1' });
  const agent = await relay.createAgent();
  const sdk = client(t, agent);
  assert.equal(sdk.proxy, null);
  await deliversOne(sdk, agent);
});

test('proxy option: a URL overrides the environment, false disables it', LIMIT, async (t) => {
  proxyEnv(t, { HTTP_PROXY: nowhere, ALL_PROXY: nowhere });
  const agent = await relay.createAgent();
  const before = open.connects(target());
  const forced = client(t, agent, { proxy: open.url });
  assert.equal(forced.proxy, open.url);
  await deliversOne(forced, agent);
  await forced.close();
  await until(() => open.connects(target()) === before + 1, { what: 'the CONNECT in the tinyproxy log' });

  const direct = client(t, agent, { proxy: false });
  assert.equal(direct.proxy, null);
  await deliversOne(direct, agent);
  assert.equal(open.connects(target()), before + 1, 'proxy: false did not go through the proxy');
});

test('an unreachable proxy: retried like an unreachable relay, then a ProxyError naming it without credentials', LIMIT, async (t) => {
  proxyEnv(t, {});
  const agent = await relay.createAgent();
  const proxyUrl = nowhere.replace('http://', `http://${USER}:hunter2@`);
  const sdk = client(t, agent, { proxy: proxyUrl, connectTimeoutMs: 1_500 });
  const retried = next(sdk, 'reconnecting');
  const err = await sdk.connect().then(
    () => assert.fail('connected through a proxy that is not there'),
    (e) => e,
  );
  assert.ok((await retried).error instanceof ProxyError);
  assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
  assert.equal(err.code, 'proxy_unreachable');
  assert.equal(err.proxy, nowhere);
  assert.ok(err.message.includes(`could not reach the proxy ${nowhere} (the proxy option)`), err.message);
  assert.ok(!err.message.includes('hunter2'));

  // With reconnect: false, at once.
  const once = client(t, agent, { proxy: proxyUrl, reconnect: false });
  const first = await once.connect().then(() => assert.fail('connected'), (e) => e);
  assert.equal(first.code, 'proxy_unreachable');
});

test('the relay behind the proxy is down: the proxy answers 5xx, retried until it is back', LIMIT, async (t) => {
  proxyEnv(t, {});
  const port = await deadPort();
  const proxy = await TinyProxy.start({ connectPorts: [port] });
  t.after(() => proxy.stop());
  // transport: 'ws': the WebSocket's tunnel alone (auto's fallback is in transports.test.mjs).
  const sdk = new WebhookRelay({ relayUrl: `http://127.0.0.1:${port}`, apiKey: 'lrk_unused', logger: null, proxy: proxy.url, connectTimeoutMs: 1_500, transport: 'ws' });
  t.after(() => sdk.close());
  const retried = next(sdk, 'reconnecting');
  const err = await sdk.connect().then(() => assert.fail('connected'), (e) => e);
  assert.equal((await retried).error.code, 'proxy_refused');
  assert.ok(err instanceof ProxyError);
  assert.equal(err.code, 'proxy_refused');
  assert.ok(err.status >= 500, `status ${err.status}`);
  assert.match(err.message, /could not open a tunnel to 127\.0\.0\.1:\d+/);
});

test('the proxy refuses the port (403): ProxyError proxy_refused, not mistaken for the relay refusing the key', LIMIT, async (t) => {
  proxyEnv(t, {});
  const agent = await relay.createAgent();
  const proxy = await TinyProxy.start({ connectPorts: [1] });
  t.after(() => proxy.stop());
  // transport: 'ws' (auto would fall back to SSE here: transports.test.mjs).
  const sdk = client(t, agent, { proxy: proxy.url, transport: 'ws' });
  const err = await sdk.connect().then(() => assert.fail('connected'), (e) => e);
  assert.ok(err instanceof ProxyError, `${err?.name}: ${err?.message}`);
  assert.equal(err.code, 'proxy_refused');
  assert.equal(err.status, 403);
  assert.match(err.message, /may not allow CONNECT/);
});

test('wss:// through the proxy: the custom CA (webSocketOptions.ca) verifies the relay inside the tunnel', LIMIT, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lobster-sdk-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', key, '-out', cert,
    ], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`openssl could not make a test certificate (apt-get install openssl): ${err.stderr ?? err.message}`);
  }
  const tlsRelay = await TestRelay.start({ args: ['--tls-cert', cert, '--tls-key', key] });
  t.after(() => tlsRelay.stop());
  const proxy = await TinyProxy.start({ connectPorts: [tlsRelay.port] });
  t.after(() => proxy.stop());
  // HTTP_PROXY is for ws:// only: a wss:// relay takes HTTPS_PROXY.
  proxyEnv(t, { HTTP_PROXY: nowhere, HTTPS_PROXY: proxy.url });
  const ca = readFileSync(cert);
  const agent = await httpsJson(tlsRelay, ca, 'POST', '/api/v1/admin/agents', { authorization: `Bearer ${tlsRelay.adminToken}` }, { name: 'tls' });
  const relayUrl = `wss://localhost:${tlsRelay.port}`;

  const sdk = new WebhookRelay({ relayUrl, apiKey: agent.api_key, logger: null, webSocketOptions: { ca } });
  t.after(() => sdk.close());
  assert.equal(sdk.proxy, proxy.url);
  const seen = next(sdk, 'webhook');
  await sdk.connect();
  const body = Buffer.from(JSON.stringify({ tls: true }));
  const id = `msg_tls_${Date.now()}`;
  const ts = Math.floor(Date.now() / 1000);
  const sent = await httpsJson(tlsRelay, ca, 'POST', new URL(agent.webhook_url).pathname, {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': sign(tlsRelay.secret, id, ts, body),
  }, body);
  assert.equal((await seen).id, sent.id);
  assert.equal(proxy.connects(`localhost:${tlsRelay.port}`), 1);

  // Without the CA the same tunnel opens, and the relay's certificate is refused.
  const untrusting = new WebhookRelay({ relayUrl, apiKey: agent.api_key, logger: null, reconnect: false });
  t.after(() => untrusting.close());
  const err = await untrusting.connect().then(() => assert.fail('trusted an unknown CA'), (e) => e);
  assert.equal(err.code, 'connection_failed');
  assert.match(err.message, /through the proxy .*certificate/);

  // SSE and long-poll take the same tunnel, the CA verifying the relay inside it
  // (the WebSocket client is closed first: it would compete for the events).
  await sdk.close();
  for (const transport of ['sse', 'poll']) {
    const overHttp = new WebhookRelay({ relayUrl, apiKey: agent.api_key, logger: null, webSocketOptions: { ca }, transport });
    t.after(() => overHttp.close());
    const arrived = next(overHttp, 'webhook');
    const info = await overHttp.connect();
    assert.equal(info.transport, transport);
    const raw = Buffer.from(JSON.stringify({ tls: transport }));
    const hookId = `msg_tls_${transport}_${Date.now()}`;
    const at = Math.floor(Date.now() / 1000);
    const posted = await httpsJson(tlsRelay, ca, 'POST', new URL(agent.webhook_url).pathname, {
      'webhook-id': hookId,
      'webhook-timestamp': String(at),
      'webhook-signature': sign(tlsRelay.secret, hookId, at, raw),
    }, raw);
    assert.equal((await arrived).id, posted.id);
    await overHttp.close();
  }
  assert.ok(proxy.connects(`localhost:${tlsRelay.port}`) >= 4, proxy.log());
});

/** A JSON request to a TLS relay on 127.0.0.1, trusting `ca` (the test's own fetch does not take a CA). */
function httpsJson(tlsRelay, ca, method, path, headers, body) {
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: tlsRelay.port, path, method, ca, servername: 'localhost', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => (res.statusCode < 300 ? resolve(JSON.parse(text)) : reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(raw);
  });
}
