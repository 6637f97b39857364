// A real lobster-relay for the tests: started on port 0 with a temporary
// data dir, plus helpers to create agents and post signed webhooks, and a
// TCP proxy that can cut or freeze connections. No mocks of the relay.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The relay binary: LOBSTER_RELAY_BIN, else the workspace's debug build. */
export const RELAY_BIN = process.env.LOBSTER_RELAY_BIN
  ? resolve(process.env.LOBSTER_RELAY_BIN)
  : resolve(here, '../../../../target/debug/lobster-relay');

/** Resolves with `promise`, or rejects after `ms` saying `what` did not happen. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` (sync or async) until it returns a truthy value, or fails after `ms`. */
export async function until(check, { ms = 10_000, every = 20, what = 'a condition' } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The next `name` event of `emitter` (its first argument), within `ms`. */
export function next(emitter, name, ms = 10_000, filter = () => true) {
  let listener;
  const promise = new Promise((resolve) => {
    listener = (arg) => {
      if (!filter(arg)) return;
      emitter.off(name, listener);
      resolve(arg);
    };
    emitter.on(name, listener);
  });
  return within(ms, `'${name}'`, promise).finally(() => emitter.off(name, listener));
}

/** The Standard Webhooks signature `v1,<base64>`, computed independently of the SDK. */
export function sign(secret, id, ts, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return 'v1,' + createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest('base64');
}

let counter = 0;

// Relays still running when this process ends (a failed test, Ctrl-C) are
// killed with it, so a run never leaves one behind.
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of live) child.kill('SIGKILL');
    process.exit(130);
  });
}

export class TestRelay {
  /** Starts a relay; `args` are extra `server` flags. */
  static async start({ args = [], port = 0, dataDir, secret, adminToken } = {}) {
    if (!existsSync(RELAY_BIN)) {
      throw new Error(`relay binary not found at ${RELAY_BIN}; build it (cargo build -p lobster-relay) or set LOBSTER_RELAY_BIN`);
    }
    const relay = new TestRelay();
    relay.dataDir = dataDir ?? mkdtempSync(join(tmpdir(), 'lobster-sdk-node-'));
    relay.ownsDataDir = !dataDir;
    relay.secret = secret ?? `whsec_${randomBytes(24).toString('base64')}`;
    relay.adminToken = adminToken ?? `lra_test_${randomBytes(16).toString('hex')}`;
    relay.args = args;
    try {
      await relay.#spawn(port);
    } catch (err) {
      if (relay.ownsDataDir) rmSync(relay.dataDir, { recursive: true, force: true });
      throw err;
    }
    return relay;
  }

  async #spawn(port) {
    const args = [
      'server',
      '--listen', `127.0.0.1:${port}`,
      '--data-dir', this.dataDir,
      '--webhook-secret', this.secret,
      '--admin-token', this.adminToken,
      '--retry-initial', '100ms',
      '--auth-failure-limit', '10000/m',
      '--agent-rate-limit', '100000/s',
      ...this.args,
    ];
    const child = spawn(RELAY_BIN, args, {
      env: { ...process.env, RELAY_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    live.add(child);
    this.stderr = '';
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      }),
    );
    const listening = new Promise((resolve, reject) => {
      let buffered = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk) => {
        this.stderr += chunk;
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line.includes('relay listening')) continue;
          try {
            resolve({ url: JSON.parse(line).fields.url, at: performance.now() });
          } catch {
            const match = /http:\/\/127\.0\.0\.1:\d+/.exec(line);
            if (match) resolve({ url: match[0], at: performance.now() });
          }
        }
      });
      child.once('exit', (code, signal) =>
        reject(new Error(`relay exited (${code ?? signal}) before listening:\n${this.stderr}`)),
      );
    });
    const { url, at } = await within(20_000, 'the relay to listen', listening);
    this.url = url;
    this.port = Number(new URL(url).port);
    /** performance.now() when the relay logged "relay listening". */
    this.listeningAt = at;
  }

  /** SIGKILL: the relay dies without closing anything. */
  async kill() {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Starts the relay again on the same port and data dir (after kill/stop). */
  async restart() {
    let lastError;
    for (let i = 0; i < 20; i++) {
      try {
        await this.#spawn(this.port);
        return;
      } catch (err) {
        lastError = err; // the port may be busy for a moment
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw lastError;
  }

  /** SIGTERM (drains, closes sessions with 1012), SIGKILL if it hangs; removes the data dir. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  async admin(method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text);
  }

  /** A new agent: {agent_id, relay_id, api_key, webhook_url}. */
  createAgent(name = `sdk-node-${++counter}`) {
    return this.admin('POST', '/api/v1/admin/agents', { name });
  }

  revoke(agentId) {
    return this.admin('DELETE', `/api/v1/admin/agents/${agentId}`);
  }

  /** GET/POST on the agent API with the agent's key; returns {status, body}. */
  async agentApi(apiKey, method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /**
   * Posts a webhook signed the Standard Webhooks way; `body` is a string,
   * Buffer or object (JSON-encoded). Returns the relay's answer {status, id, duplicate}.
   */
  async send(webhookUrl, body, { contentType, id = `msg_${Date.now()}_${++counter}_${randomBytes(4).toString('hex')}` } = {}) {
    const raw = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const ts = Math.floor(Date.now() / 1000);
    const res = await fetch(webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': contentType ?? (typeof body === 'object' && !Buffer.isBuffer(body) ? 'application/json' : 'application/octet-stream'),
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': sign(this.secret, id, ts, raw),
      },
      body: raw,
    });
    const answer = await res.json();
    if (res.status !== 202) throw new Error(`webhook not accepted: HTTP ${res.status} ${JSON.stringify(answer)}`);
    return { status: res.status, ...answer, webhookId: id };
  }

  /** One value of the relay's Prometheus metrics (summed over matching label sets). */
  async metric(name, labelFilter = '') {
    const text = await (await fetch(this.url + '/metrics')).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      if (labelFilter && !line.includes(labelFilter)) continue;
      const rest = line.slice(name.length);
      if (rest[0] !== '{' && rest[0] !== ' ') continue;
      sum += Number(line.split(' ').pop());
    }
    return sum;
  }
}

/**
 * A TCP proxy in front of the relay, so a test can cut connections (as a
 * network failure would) or freeze them (a silent peer), without touching
 * the relay or the SDK's internals.
 */
export class Proxy {
  static async start(targetPort) {
    const proxy = new Proxy();
    proxy.targetPort = targetPort;
    proxy.pairs = new Set();
    proxy.frozen = false;
    proxy.server = net.createServer((client) => proxy.#accept(client));
    await new Promise((r) => proxy.server.listen(0, '127.0.0.1', r));
    proxy.port = proxy.server.address().port;
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  }

  #accept(client) {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forward = (from, to) =>
      from.on('data', (chunk) => {
        if (!this.frozen) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  }

  /** Cuts every connection (RST-like: both sockets destroyed). */
  cutAll() {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy?.() ?? client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stops forwarding bytes (connections stay open but silent) until thaw(). */
  freeze() {
    this.frozen = true;
  }

  thaw() {
    this.frozen = false;
  }

  async close() {
    this.cutAll();
    await new Promise((r) => this.server.close(r));
  }
}
