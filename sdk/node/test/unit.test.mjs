// Parts that need no relay: signatures, headers, options, the built package.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import test from 'node:test';

import {
  AuthenticationError,
  ConfigurationError,
  VERSION,
  WebhookEvent,
  WebhookHeaders,
  WebhookRelay,
  assertSignature,
  signStandardWebhook,
  verifySignature,
} from '@powerlobster/webhook';

const require = createRequire(import.meta.url);

// The contract's test vector (interface section 3).
const VECTOR = {
  secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD',
  id: 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk',
  ts: 1649367553,
  body: '{"email":"test@example.com","username":"test_user"}',
  signature: 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=',
};

function vectorHeaders(signature = VECTOR.signature) {
  return { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.ts), 'webhook-signature': signature };
}

test('signStandardWebhook reproduces the contract test vector', () => {
  assert.equal(signStandardWebhook(VECTOR.secret, VECTOR.id, VECTOR.ts, VECTOR.body), VECTOR.signature);
  assert.equal(signStandardWebhook(VECTOR.secret, VECTOR.id, new Date(VECTOR.ts * 1000), Buffer.from(VECTOR.body)), VECTOR.signature);
});

test('verifySignature accepts the test vector and rejects any change', () => {
  const at = { now: VECTOR.ts };
  assert.equal(verifySignature({ headers: vectorHeaders(), body: VECTOR.body }, VECTOR.secret, at), true);
  // Several entries: any valid one passes; other versions are ignored.
  assert.equal(
    verifySignature({ headers: vectorHeaders(`v1a,abc v1,AAAA ${VECTOR.signature}`), body: VECTOR.body }, VECTOR.secret, at),
    true,
  );
  assert.equal(verifySignature({ headers: vectorHeaders(), body: VECTOR.body + ' ' }, VECTOR.secret, at), false);
  assert.equal(verifySignature({ headers: vectorHeaders(), body: VECTOR.body }, 'whsec_' + Buffer.from('other').toString('base64'), at), false);
  // Empty, truncated or junk signatures never pass.
  for (const bad of ['', 'v1,', 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3', 'v1,!!!!', VECTOR.signature.replace('v1,', 'v2,')]) {
    assert.equal(verifySignature({ headers: vectorHeaders(bad), body: VECTOR.body }, VECTOR.secret, at), false, bad);
  }
  // Rotation: any one of the secrets verifies.
  assert.equal(verifySignature({ headers: vectorHeaders(), body: VECTOR.body }, ['whsec_AAAA', VECTOR.secret], at), true);
});

test('verifySignature checks the timestamp against now, receivedAt or the given time', () => {
  const message = { headers: vectorHeaders(), body: VECTOR.body };
  assert.throws(() => assertSignature(message, VECTOR.secret), { code: 'timestamp_out_of_tolerance' });
  assert.equal(verifySignature(message, VECTOR.secret, { toleranceSeconds: null }), true);
  assert.equal(verifySignature({ ...message, receivedAt: new Date((VECTOR.ts + 60) * 1000) }, VECTOR.secret), true);
  assert.equal(verifySignature({ ...message, receivedAt: new Date((VECTOR.ts + 600) * 1000) }, VECTOR.secret), false);
  assert.throws(() => assertSignature({ headers: {}, body: '' }, VECTOR.secret), { code: 'missing_signature' });
});

test('verifySignature takes every header shape, and WebhookEvents', () => {
  const pairs = Object.entries(vectorHeaders());
  const shapes = [vectorHeaders(), pairs, new WebhookHeaders(pairs), new Headers(vectorHeaders()), { 'Webhook-Id': VECTOR.id, 'WEBHOOK-TIMESTAMP': String(VECTOR.ts), 'webhook-signature': [VECTOR.signature] }];
  for (const headers of shapes) {
    assert.equal(verifySignature({ headers, body: VECTOR.body }, VECTOR.secret, { now: VECTOR.ts }), true);
  }
  const event = new WebhookEvent({
    id: 'evt_1',
    type: 'user.created',
    attempt: 1,
    receivedAt: new Date(VECTOR.ts * 1000 + 1500),
    headers: new WebhookHeaders(pairs),
    body: Buffer.from(VECTOR.body),
  });
  assert.equal(verifySignature(event, VECTOR.secret), true);
});

test('github and stripe signatures', () => {
  const secret = 'It\'s a Secret to Everybody';
  const body = 'Hello, World!';
  // GitHub's documented example.
  const github = { 'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' };
  assert.equal(verifySignature({ headers: github, body }, secret, { scheme: 'github' }), true);
  assert.equal(verifySignature({ headers: github, body: body + '!' }, secret, { scheme: 'github' }), false);
  const t = 1700000000;
  const v1 = createHmac('sha256', 'whsec_stripe').update(`${t}.${body}`).digest('hex');
  const stripe = { 'stripe-signature': `t=${t},v1=${'0'.repeat(64)},v1=${v1}` };
  assert.equal(verifySignature({ headers: stripe, body }, 'whsec_stripe', { scheme: 'stripe', now: t + 10 }), true);
  assert.equal(verifySignature({ headers: stripe, body }, 'whsec_stripe', { scheme: 'stripe', now: t + 1000 }), false);
  assert.equal(verifySignature({ headers: stripe, body }, 'whsec_other', { scheme: 'stripe', now: t }), false);
});

test('headers: case-insensitive lookup, raw pairs kept in order', () => {
  const headers = new WebhookHeaders([
    ['Content-Type', 'application/json'],
    ['X-Tag', 'a'],
    ['x-tag', 'b'],
  ]);
  assert.equal(headers.get('content-type'), 'application/json');
  assert.equal(headers.get('CONTENT-TYPE'), 'application/json');
  assert.equal(headers.get('x-tag'), 'a, b');
  assert.deepEqual(headers.getAll('X-TAG'), ['a', 'b']);
  assert.equal(headers.has('X-Tag'), true);
  assert.equal(headers.has('missing'), false);
  assert.equal(headers.get('missing'), undefined);
  assert.deepEqual([...headers], [['Content-Type', 'application/json'], ['X-Tag', 'a'], ['x-tag', 'b']]);
  assert.deepEqual(headers.raw, [['Content-Type', 'application/json'], ['X-Tag', 'a'], ['x-tag', 'b']]);
  assert.deepEqual(headers.toObject(), { 'content-type': 'application/json', 'x-tag': 'a, b' });
  assert.equal(headers.size, 3);
});

test('event frames: utf8 and base64 bodies, payload only for JSON', () => {
  const frame = (body, body_encoding, extra = {}) => ({
    type: 'event', id: 'evt_1', event_type: 't', received_at: '2026-01-02T03:04:05.678Z', attempt: 2,
    headers: [['a', 'b']], body, body_encoding, ...extra,
  });
  const json = WebhookEvent.fromFrame(frame('{"a":1}', 'utf8'));
  assert.deepEqual(json.payload, { a: 1 });
  assert.equal(json.attempt, 2);
  assert.equal(json.replay, false);
  assert.equal(json.receivedAt.toISOString(), '2026-01-02T03:04:05.678Z');
  assert.equal(json.rawBody, json.body);
  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x7b]);
  const binary = WebhookEvent.fromFrame(frame(bytes.toString('base64'), 'base64', { replay: true }));
  assert.deepEqual(binary.body, bytes);
  assert.equal(binary.payload, null);
  assert.equal(binary.replay, true);
  // JSON-looking bytes that are not UTF-8 are not JSON.
  const notUtf8 = WebhookEvent.fromFrame(frame(Buffer.from([0x22, 0xff, 0x22]).toString('base64'), 'base64'));
  assert.equal(notUtf8.payload, null);
  assert.equal(WebhookEvent.fromFrame(frame('plain text', 'utf8')).payload, null);
  assert.equal(WebhookEvent.fromFrame(frame('', 'utf8')).payload, null);
});

test('options: clear errors', () => {
  const key = 'lrk_test';
  const url = 'http://127.0.0.1:1';
  assert.throws(() => new WebhookRelay({ relayUrl: 'ftp://relay.example.com', apiKey: key }), { name: 'ConfigurationError', code: 'invalid_relay_url', message: /https:\/\/, http:\/\/, wss:\/\/ or ws:\/\// });
  assert.throws(() => new WebhookRelay({ relayUrl: 'not a url', apiKey: key }), ConfigurationError);
  assert.throws(() => new WebhookRelay({ relayUrl: url, apiKey: key, maxConcurrency: 0 }), { code: 'invalid_max_concurrency', message: /at least 1/ });
  assert.throws(() => new WebhookRelay({ relayUrl: url, apiKey: key, maxConcurrency: 1.5 }), ConfigurationError);
  assert.throws(() => new WebhookRelay({ relayUrl: url, apiKey: key, events: [] }), { code: 'invalid_events' });
  assert.throws(() => new WebhookRelay({ relayUrl: url, apiKey: 'lrk_x y' }), { code: 'invalid_api_key' });
  const saved = process.env.LOBSTER_RELAY_API_KEY;
  try {
    delete process.env.LOBSTER_RELAY_API_KEY;
    assert.throws(() => new WebhookRelay({ relayUrl: url, apiKey: undefined }), { code: 'missing_api_key', message: /LOBSTER_RELAY_API_KEY/ });
    process.env.LOBSTER_RELAY_API_KEY = 'lrk_from_env';
    assert.ok(new WebhookRelay({ relayUrl: url, apiKey: undefined }));
  } finally {
    if (saved === undefined) delete process.env.LOBSTER_RELAY_API_KEY;
    else process.env.LOBSTER_RELAY_API_KEY = saved;
  }
});

test('relayUrl maps to the connect endpoint, keeping a path prefix', () => {
  const url = (relayUrl, events) => new WebhookRelay({ relayUrl, apiKey: 'lrk_x', events }).url;
  assert.equal(url('http://127.0.0.1:8080'), 'ws://127.0.0.1:8080/api/v1/agent/connect');
  assert.equal(url('https://relay.example.com/'), 'wss://relay.example.com/api/v1/agent/connect');
  assert.equal(url('wss://relay.example.com/base/'), 'wss://relay.example.com/base/api/v1/agent/connect');
  assert.equal(url('ws://h/base/api/v1/agent/connect'), 'ws://h/base/api/v1/agent/connect');
  assert.equal(url('https://h', 'message.*, ping'), 'wss://h/api/v1/agent/connect?events=message.*,ping');
  assert.equal(url('https://h', ['a.*', 'b']), 'wss://h/api/v1/agent/connect?events=a.*,b');
  const saved = process.env.LOBSTER_RELAY_URL;
  try {
    delete process.env.LOBSTER_RELAY_URL;
    assert.equal(url(undefined), 'wss://relay.powerlobster.com/api/v1/agent/connect');
  } finally {
    if (saved !== undefined) process.env.LOBSTER_RELAY_URL = saved;
  }
});

test('the package: version, CommonJS build, error classes', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
  const cjs = require('@powerlobster/webhook');
  assert.equal(typeof cjs.WebhookRelay, 'function');
  assert.equal(cjs.signStandardWebhook(VECTOR.secret, VECTOR.id, VECTOR.ts, VECTOR.body), VECTOR.signature);
  const err = new AuthenticationError('x', 'unauthorized', { status: 401 });
  assert.equal(err.name, 'AuthenticationError');
  assert.equal(err.status, 401);
  assert.ok(err instanceof Error);
});

test('proxy from the environment: HTTPS_PROXY for wss, HTTP_PROXY for ws, ALL_PROXY as fallback, lowercase first, NO_PROXY', async (t) => {
  const names = ['HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY'].flatMap((n) => [n, n.toLowerCase()]);
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  t.after(() => {
    for (const [n, v] of Object.entries(saved)) if (v === undefined) delete process.env[n]; else process.env[n] = v;
  });
  const proxyFor = (relayUrl, env, options = {}) => {
    for (const n of names) delete process.env[n];
    Object.assign(process.env, env);
    return new WebhookRelay({ relayUrl, apiKey: 'lrk_x', ...options }).proxy;
  };
  const P = 'http://secure.proxy:3128';
  const Q = 'http://plain.proxy:8080';
  assert.equal(proxyFor('https://relay.example.com', {}), null);
  assert.equal(proxyFor('https://relay.example.com', { HTTPS_PROXY: P, HTTP_PROXY: Q }), P);
  assert.equal(proxyFor('wss://relay.example.com', { HTTPS_PROXY: P, HTTP_PROXY: Q }), P);
  assert.equal(proxyFor('http://relay.example.com', { HTTPS_PROXY: P, HTTP_PROXY: Q }), Q);
  assert.equal(proxyFor('http://relay.example.com', { HTTPS_PROXY: P }), null, 'ws:// does not take HTTPS_PROXY');
  assert.equal(proxyFor('wss://relay.example.com', { ALL_PROXY: Q }), Q);
  assert.equal(proxyFor('wss://relay.example.com', { https_proxy: P, HTTPS_PROXY: Q }), P, 'lowercase wins');
  assert.equal(proxyFor('wss://relay.example.com', { https_proxy: '', HTTPS_PROXY: Q }), Q, 'empty counts as unset');
  assert.equal(proxyFor('wss://relay.example.com', { HTTPS_PROXY: 'proxy.corp:3128' }), 'http://proxy.corp:3128', 'no scheme: http://');
  assert.equal(proxyFor('wss://relay.example.com', { HTTPS_PROXY: 'https://u:p@proxy.corp' }), 'https://proxy.corp:443', 'credentials never shown');
  assert.equal(proxyFor('wss://relay.example.com', { HTTPS_PROXY: 'http://proxy.corp' }), 'http://proxy.corp:80');

  // NO_PROXY: *, exact host, domain suffix (with or without the dot or *.), IP, CIDR, :port.
  const bypassed = (relayUrl, noProxy) => proxyFor(relayUrl, { HTTPS_PROXY: P, HTTP_PROXY: P, NO_PROXY: noProxy }) === null;
  assert.ok(bypassed('https://relay.example.com', '*'));
  assert.ok(bypassed('https://relay.example.com', 'other.org, relay.example.com'));
  assert.ok(bypassed('https://relay.example.com', 'example.com'));
  assert.ok(bypassed('https://relay.example.com', '.example.com'));
  assert.ok(bypassed('https://relay.example.com', '*.example.com'));
  assert.ok(bypassed('https://RELAY.Example.com', 'relay.EXAMPLE.com'));
  assert.ok(!bypassed('https://relay.example.com', 'ample.com'));
  assert.ok(!bypassed('https://relay.example.com', 'relay.example.co'));
  assert.ok(bypassed('https://relay.example.com:8443', 'relay.example.com:8443'));
  assert.ok(!bypassed('https://relay.example.com:8443', 'relay.example.com:443'));
  assert.ok(bypassed('https://relay.example.com', 'relay.example.com:443'));
  assert.ok(bypassed('http://10.1.2.3:8080', '10.1.2.3'));
  assert.ok(bypassed('http://10.1.2.3:8080', '10.0.0.0/8'));
  assert.ok(!bypassed('http://11.1.2.3:8080', '10.0.0.0/8'));
  assert.ok(bypassed('http://[::1]:8080', '::1'));
  assert.ok(bypassed('http://[::1]:8080', '[::1]:8080'));
  assert.ok(bypassed('http://[fd00::5]:8080', 'fd00::/8'));
  assert.ok(bypassed('http://localhost:8080', 'localhost,127.0.0.1'));
  assert.ok(!bypassed('http://127.0.0.2:8080', 'localhost,127.0.0.1'));
  assert.equal(proxyFor('https://relay.example.com', { HTTPS_PROXY: P, no_proxy: 'x.org', NO_PROXY: 'example.com' }), P, 'lowercase no_proxy wins');

  // The option: a URL forces it (NO_PROXY aside), false or null disables it.
  assert.equal(proxyFor('https://relay.example.com', { NO_PROXY: '*' }, { proxy: Q }), Q);
  assert.equal(proxyFor('https://relay.example.com', { HTTPS_PROXY: P }, { proxy: false }), null);
  assert.equal(proxyFor('https://relay.example.com', { HTTPS_PROXY: P }, { proxy: null }), null);
  // An agent of one's own decides the route.
  assert.equal(proxyFor('https://relay.example.com', { HTTPS_PROXY: P }, { webSocketOptions: { agent: new (await import('node:https')).Agent() } }), null);
});

test('bad proxy settings are ConfigurationErrors that do not print the password', () => {
  const make = (proxy, extra = {}) => () => new WebhookRelay({ relayUrl: 'https://relay.example.com', apiKey: 'lrk_x', proxy, ...extra });
  assert.throws(make('socks5://u:hunter2@127.0.0.1:1080'), (err) => {
    assert.equal(err.name, 'ConfigurationError');
    assert.equal(err.code, 'unsupported_proxy');
    assert.match(err.message, /socks5:\/\/ proxy; the SDK tunnels only through HTTP proxies/);
    assert.ok(!err.message.includes('hunter2'));
    return true;
  });
  assert.throws(make('http://u:hunter2@[bad'), (err) => err.code === 'invalid_proxy' && !err.message.includes('hunter2'));
  assert.throws(make('http://u:%zz@proxy:1'), { code: 'invalid_proxy', message: /malformed %-escape/ });
  assert.throws(make(''), { code: 'invalid_proxy' });
  assert.throws(make(42), { code: 'invalid_proxy' });
  assert.throws(make('http://proxy:1', { webSocketOptions: { agent: {} } }), { code: 'invalid_proxy', message: /not both/ });
  const saved = process.env.HTTPS_PROXY;
  process.env.HTTPS_PROXY = 'ftp://u:hunter2@proxy';
  try {
    assert.throws(make(undefined), (err) => err.code === 'unsupported_proxy' && /HTTPS_PROXY is a ftp:\/\//.test(err.message) && !err.message.includes('hunter2'));
  } finally {
    if (saved === undefined) delete process.env.HTTPS_PROXY;
    else process.env.HTTPS_PROXY = saved;
  }
});

// The reconnect backoff, as the CLI's (shared/src/backoff.rs). Internal: from the build.
const { Backoff } = require('../dist/cjs/internal.js');
const LIMITS = { initialDelayMs: 250, maxDelayMs: 10_000, stableAfterMs: 10_000 };
const ceilings = (backoff, n) => Array.from({ length: n }, () => {
  const ceiling = backoff.ceiling();
  backoff.next();
  return ceiling;
});

test('backoff: ceilings double from 250 ms up to 10 s, delays stay below them', () => {
  assert.deepEqual(ceilings(new Backoff(LIMITS, () => 0.5), 9), [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  const top = new Backoff(LIMITS, () => 1);
  assert.deepEqual([top.next(), top.next()], [249, 499]);
  assert.equal(new Backoff(LIMITS, () => 0).next(), 0);
});

test('backoff: a short connection does not reset, a 1012 retries within 500 ms 20 times without growing', () => {
  const backoff = new Backoff(LIMITS, () => 0.5);
  ceilings(backoff, 7);
  backoff.connectionLasted(9_999);
  assert.equal(backoff.ceiling(), 10_000);
  const fresh = new Backoff(LIMITS, () => 0.5);
  ceilings(fresh, 2);
  fresh.relayRestarting();
  assert.deepEqual(ceilings(fresh, 22), [...Array(20).fill(500), 1000, 2000]);
});

test('backoff: a dropped stable connection retries 12 times within 250 ms, then doubles from 250 ms', () => {
  const backoff = new Backoff(LIMITS, () => 0.999);
  ceilings(backoff, 7);
  backoff.connectionLasted(10_000);
  const delays = Array.from({ length: 12 }, () => backoff.next());
  assert.ok(delays.every((d) => d >= 240 && d < 250), `${delays}`);
  assert.deepEqual(ceilings(backoff, 3), [250, 500, 1000]);

  const again = new Backoff(LIMITS, () => 0.5);
  ceilings(again, 7);
  again.connectionLasted(60_000);
  assert.deepEqual(ceilings(again, 15), [...Array(12).fill(250), 250, 500, 1000]);
  // A 1012 on that drop takes precedence: 20 tries within 500 ms, then the doubling from 250 ms.
  ceilings(again, 4);
  again.connectionLasted(10_000);
  again.relayRestarting();
  assert.deepEqual(ceilings(again, 23), [...Array(20).fill(500), 250, 500, 1000]);
});
