#!/usr/bin/env bash
# The Node SDK's whole check, as CI runs it (about a minute):
#   npm ci, build, the tests against the real relay binary, then npm pack and
#   an install of the tarball into a scratch project that imports it (ESM and
#   CommonJS, with type checks), and the examples run against a relay.
#
#   sdk/node/test.sh
#
# The relay binary: LOBSTER_RELAY_BIN, default ../../target/debug/lobster-relay
# (cargo build -p lobster-relay). Needs node >= 18 and npm (the registry for
# npm ci and the tarball's dependencies, ws and https-proxy-agent), tinyproxy
# and openssl (the proxy tests; TINYPROXY names another tinyproxy binary),
# nginx and squid (the transport tests; NGINX, SQUID name other binaries).
set -euo pipefail
cd "$(dirname "$0")"
here="$PWD"

export LOBSTER_RELAY_BIN="${LOBSTER_RELAY_BIN:-$here/../../target/debug/lobster-relay}"
if [ ! -x "$LOBSTER_RELAY_BIN" ]; then
  echo "sdk/node/test.sh: no relay binary at $LOBSTER_RELAY_BIN; run cargo build -p lobster-relay first, or set LOBSTER_RELAY_BIN" >&2
  exit 1
fi
LOBSTER_RELAY_BIN="$(cd "$(dirname "$LOBSTER_RELAY_BIN")" && pwd)/$(basename "$LOBSTER_RELAY_BIN")"

# Everything this run creates (relay data dirs, the scratch project) lives in
# one temp dir; on exit, any process still running from it is stopped (by
# pid, matched on that unique path), and it is removed.
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/lobster-sdk-node.XXXXXX")"
export TMPDIR="$run_dir"
cleanup() {
  local pids=""
  if command -v pgrep >/dev/null; then pids="$(pgrep -f -- "$run_dir" || true)"; fi
  if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null || true; fi
  rm -rf "$run_dir"
}
trap cleanup EXIT

# The proxy tests run a real tinyproxy (and make a TLS certificate with
# openssl); a missing one fails the run rather than skipping them.
export TINYPROXY="${TINYPROXY:-$(command -v tinyproxy || echo /usr/sbin/tinyproxy)}"
[ -x "$TINYPROXY" ] ||
  { echo "sdk/node/test.sh: tinyproxy not found; the proxy tests need it (Debian: apt-get install tinyproxy, or set TINYPROXY)" >&2; exit 1; }
# The transport tests put a buffering nginx in front of the relay (auto must
# end on long-poll behind it) and go through squid; a missing one fails the run too.
export NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX" ] ||
  { echo "sdk/node/test.sh: nginx not found; the transport tests need it (Debian: apt-get install nginx-light, or set NGINX)" >&2; exit 1; }
export SQUID="${SQUID:-$(command -v squid || echo /usr/sbin/squid)}"
[ -x "$SQUID" ] ||
  { echo "sdk/node/test.sh: squid not found; the transport tests need it (Debian: apt-get install squid, or set SQUID)" >&2; exit 1; }
command -v openssl >/dev/null ||
  { echo "sdk/node/test.sh: openssl not found; the proxy tests make a TLS certificate with it (Debian: apt-get install openssl)" >&2; exit 1; }
# The suites choose their proxies themselves: none from the caller's
# environment (npm itself keeps them, for the registry).
without_proxies=(env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy -u NO_PROXY -u no_proxy)

echo "== node $(node --version), npm $(npm --version), relay $("$LOBSTER_RELAY_BIN" --version)"

echo "== npm ci"
npm ci --no-audit --no-fund

echo "== build and test (npm test)"
"${without_proxies[@]}" npm test

echo "== npm pack, install the tarball into a scratch project"
scratch="$run_dir/scratch"
mkdir -p "$scratch"
tarball="$(npm pack --silent --pack-destination "$scratch" | tail -n 1)"
echo "packed $tarball: $(tar -tzf "$scratch/$tarball" | tr '\n' ' ')"
cat > "$scratch/package.json" <<'JSON'
{ "name": "scratch-install-check", "version": "1.0.0", "private": true }
JSON
(cd "$scratch" && npm install --no-audit --no-fund --prefer-offline "./$tarball")

cat > "$scratch/esm.mjs" <<'JS'
import assert from 'node:assert/strict';
import { WebhookRelay, WebhookEvent, verifySignature, signStandardWebhook, AuthenticationError, TimeoutError, VERSION } from '@powerlobster/webhook';
import { createRequire } from 'node:module';
const pkg = createRequire(import.meta.url)('@powerlobster/webhook/package.json');
assert.equal(VERSION, pkg.version);
for (const value of [WebhookRelay, WebhookEvent, AuthenticationError, TimeoutError]) assert.equal(typeof value, 'function');
assert.equal(signStandardWebhook('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD', 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk', 1649367553, '{"email":"test@example.com","username":"test_user"}'),
  'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=');
assert.equal(typeof verifySignature, 'function');
const relay = new WebhookRelay({ relayUrl: 'https://relay.example.com', apiKey: 'lrk_x' });
assert.equal(relay.url, 'wss://relay.example.com/api/v1/agent/connect');
console.log('ESM import ok:', Object.keys(await import('@powerlobster/webhook')).join(', '));
JS
cat > "$scratch/cjs.cjs" <<'JS'
const assert = require('node:assert/strict');
const sdk = require('@powerlobster/webhook');
for (const name of ['WebhookRelay', 'WebhookEvent', 'WebhookHeaders', 'verifySignature', 'assertSignature', 'signStandardWebhook',
  'RelayError', 'AuthenticationError', 'ConnectionError', 'ConfigurationError', 'TimeoutError', 'ClosedError', 'HandlerError', 'SignatureError',
  'ProxyError', 'VERSION']) {
  assert.ok(name in sdk, `missing export ${name}`);
}
assert.throws(() => new sdk.WebhookRelay({ relayUrl: 'ftp://x', apiKey: 'lrk_x' }), { name: 'ConfigurationError' });
assert.ok(require.resolve('@powerlobster/webhook').endsWith('dist/cjs/index.js'));
console.log('CommonJS require ok:', Object.keys(sdk).join(', '));
JS
cat > "$scratch/types.mts" <<'TS'
import { WebhookRelay, type WebhookEvent, type ConnectedInfo, type FallbackInfo, type TransportName, type TransportOption } from '@powerlobster/webhook';
const relay = new WebhookRelay({ relayUrl: 'wss://relay.example.com', apiKey: 'lrk_x', maxConcurrency: 1 });
relay.on('webhook', async (event: WebhookEvent) => { const bytes: Buffer = event.body; void bytes; void event.headers.get('x'); });
relay.on('connected', (info: ConnectedInfo) => { const url: string = info.webhookUrl; const via: TransportName = info.transport; void url; void via; });
relay.on('fallback', (f: FallbackInfo) => { const why: string = f.reason; const from: TransportName = f.previous; void why; void from; });
const viaHttp = new WebhookRelay({ apiKey: 'lrk_x', transport: 'sse' as TransportOption, sseReadyTimeoutMs: 2000 });
const inUse: TransportName | null = viaHttp.transport; void inUse;
TS
cat > "$scratch/types.cts" <<'TS'
import sdk = require('@powerlobster/webhook');
const relay = new sdk.WebhookRelay({ apiKey: 'lrk_x' });
relay.on('disconnected', (info) => { const again: boolean = info.willReconnect; void again; });
TS
(
  cd "$scratch"
  node esm.mjs
  node cjs.cjs
  # The declarations resolve through the exports map, for import and require
  # (only @types/node from the SDK's dev dependencies; no @types/ws needed).
  ln -s "$here/node_modules/@types" node_modules/@types
  node "$here/node_modules/typescript/bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext --types node types.mts types.cts
  echo "type declarations ok (ESM and CommonJS)"
)

echo "== examples against a relay"
"${without_proxies[@]}" node test/support/check-examples.mjs "$scratch"

echo "== sdk/node: all checks passed"
