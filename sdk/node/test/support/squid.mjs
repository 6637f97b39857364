// A real squid (Debian package `squid`) for the tests, on a free loopback
// port with its config and logs in a temp dir, configured as a typical
// corporate proxy: plain HTTP is forwarded, CONNECT only to port 443 (so the
// WebSocket's tunnel to a relay on another port is refused with 403).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { until } from './relay.mjs';
import { deadPort } from './tinyproxy.mjs';

/** The squid binary: SQUID, else the first on PATH, else /usr/sbin/squid. */
export function squidBin() {
  if (process.env.SQUID) return process.env.SQUID;
  const found = spawnSync('sh', ['-c', 'command -v squid'], { encoding: 'utf8' }).stdout.trim();
  return found || '/usr/sbin/squid';
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class Squid {
  static async start() {
    const bin = squidBin();
    if (!existsSync(bin)) throw new Error(`squid not found (looked for ${bin}); install it (apt-get install squid) or set SQUID`);
    const squid = new Squid();
    // Squid started as root writes its logs as its own user ('proxy'), so its
    // dir must be reachable for that user: under /tmp, not a private TMPDIR
    // (sdk/node/test.sh makes one with mode 700).
    squid.dir = mkdtempSync(join(existsSync('/tmp') ? '/tmp' : tmpdir(), 'lobster-squid-'));
    chmodSync(squid.dir, 0o777);
    squid.port = await deadPort();
    const d = squid.dir;
    const conf = [
      `http_port 127.0.0.1:${squid.port}`,
      `pid_filename ${d}/squid.pid`,
      `access_log stdio:${d}/access.log squid`,
      `cache_log ${d}/cache.log`,
      `coredump_dir ${d}`,
      'cache deny all',
      'cache_mem 8 MB',
      'pinger_enable off',
      'shutdown_lifetime 0 seconds',
      'acl SSL_ports port 443',
      'acl CONNECT method CONNECT',
      'acl loopback src 127.0.0.1/32',
      'http_access deny CONNECT !SSL_ports',
      'http_access allow loopback',
      'http_access deny all',
    ].join('\n');
    writeFileSync(join(d, 'squid.conf'), conf + '\n');
    const child = spawn(bin, ['-N', '-f', join(d, 'squid.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    squid.child = child;
    live.add(child);
    squid.exited = new Promise((resolve) => child.once('exit', () => (live.delete(child), resolve())));
    let gone = false;
    void squid.exited.then(() => (gone = true));
    await until(
      async () => {
        if (gone) throw new Error(`squid exited before listening on ${squid.port}: ${stderr.trim()} ${squid.cacheLog()}`);
        return canConnect(squid.port);
      },
      { ms: 30_000, what: `squid to listen on ${squid.port}` },
    );
    squid.url = `http://127.0.0.1:${squid.port}`;
    return squid;
  }

  cacheLog() {
    const file = join(this.dir, 'cache.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Its access log so far (squid writes a line when a request ends). */
  accessLog() {
    const file = join(this.dir, 'access.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
