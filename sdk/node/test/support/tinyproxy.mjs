// A real HTTP proxy for the tests: tinyproxy (Debian package `tinyproxy`),
// started on a free loopback port with its config and log in a temp dir,
// allowing CONNECT to the given ports, optionally with basic auth.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { until } from './relay.mjs';

/** The tinyproxy binary: TINYPROXY, else the first on PATH, else /usr/bin/tinyproxy. */
export function tinyproxyBin() {
  if (process.env.TINYPROXY) return process.env.TINYPROXY;
  const found = spawnSync('sh', ['-c', 'command -v tinyproxy'], { encoding: 'utf8' }).stdout.trim();
  return found || '/usr/bin/tinyproxy';
}

/** A loopback port nothing listens on (bound, then released). */
export async function deadPort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class TinyProxy {
  /** `connectPorts`: ports CONNECT may reach; `auth`: [user, password]; `port`: fixed port (restarts). */
  static async start({ connectPorts, auth, port } = {}) {
    const bin = tinyproxyBin();
    if (!existsSync(bin)) {
      throw new Error(`tinyproxy not found (looked for ${bin}); install it (apt-get install tinyproxy) or set TINYPROXY`);
    }
    const proxy = new TinyProxy();
    proxy.dir = mkdtempSync(join(tmpdir(), 'lobster-tinyproxy-'));
    proxy.logFile = join(proxy.dir, 'tinyproxy.log');
    proxy.connectPorts = connectPorts;
    proxy.auth = auth;
    for (let attempt = 0; ; attempt++) {
      proxy.port = port ?? (await deadPort());
      try {
        await proxy.#spawn(bin);
        break;
      } catch (err) {
        if (attempt >= 4) throw err; // the free port was taken meanwhile: pick another
      }
    }
    return proxy;
  }

  async #spawn(bin) {
    const conf = [
      `Port ${this.port}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      `LogFile "${this.logFile}"`,
      'LogLevel Connect',
      'MaxClients 50',
      'Allow 127.0.0.1',
      'DisableViaHeader Yes',
      ...this.connectPorts.map((p) => `ConnectPort ${p}`),
      ...(this.auth ? [`BasicAuth ${this.auth[0]} ${this.auth[1]}`] : []),
    ].join('\n');
    const confFile = join(this.dir, 'tinyproxy.conf');
    writeFileSync(confFile, conf + '\n');
    const child = spawn(bin, ['-d', '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) => child.once('exit', () => (live.delete(child), resolve())));
    let gone = false;
    void this.exited.then(() => (gone = true));
    await until(
      async () => {
        if (gone) throw new Error(`tinyproxy exited before listening on ${this.port}: ${stderr.trim()}`);
        return canConnect(this.port);
      },
      { ms: 10_000, what: `tinyproxy to listen on ${this.port}` },
    );
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** The URL with credentials, `http://user:pass@127.0.0.1:port`. */
  urlWith(user, password) {
    return `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${this.port}`;
  }

  /** Its log so far. */
  log() {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** How many CONNECT requests to `hostPort` the log shows. */
  connects(hostPort) {
    return this.log().split('\n').filter((line) => line.includes(`CONNECT ${hostPort} `)).length;
  }

  async stop({ keepDir = false } = {}) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    if (!keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops it and starts it again on the same port with other options (e.g. another password). */
  async restart(options) {
    await this.stop({ keepDir: true });
    Object.assign(this, options);
    await until(async () => {
      try {
        await this.#spawn(tinyproxyBin());
        return true;
      } catch {
        return false; // the port may be busy for a moment
      }
    }, { ms: 10_000, what: `tinyproxy to restart on ${this.port}` });
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
