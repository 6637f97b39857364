// A real buffering reverse proxy for the tests: nginx (Debian package
// `nginx-light`) in front of the relay, on a free loopback port with its
// config, logs and temp files in a temp dir. It buffers answers
// (`proxy_buffering on`, the relay's `X-Accel-Buffering: no` ignored) and
// passes no WebSocket upgrade: the network that `transport: 'auto'` must
// get through with long-poll.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { until } from './relay.mjs';
import { deadPort } from './tinyproxy.mjs';

/** The nginx binary: NGINX, else the first on PATH, else /usr/sbin/nginx. */
export function nginxBin() {
  if (process.env.NGINX) return process.env.NGINX;
  const found = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  return found || '/usr/sbin/nginx';
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class BufferingNginx {
  static async start(upstreamPort) {
    const bin = nginxBin();
    if (!existsSync(bin)) throw new Error(`nginx not found (looked for ${bin}); install it (apt-get install nginx-light) or set NGINX`);
    const proxy = new BufferingNginx();
    proxy.dir = mkdtempSync(join(tmpdir(), 'lobster-nginx-'));
    for (let attempt = 0; ; attempt++) {
      proxy.port = await deadPort();
      try {
        await proxy.#spawn(bin, upstreamPort);
        break;
      } catch (err) {
        if (attempt >= 4) throw err; // the free port was taken meanwhile: pick another
      }
    }
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  }

  async #spawn(bin, upstreamPort) {
    const d = this.dir;
    const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log info;
events { worker_connections 64; }
http {
  access_log ${d}/access.log;
  client_body_temp_path ${d}/body;
  proxy_temp_path ${d}/proxy;
  fastcgi_temp_path ${d}/fastcgi;
  uwsgi_temp_path ${d}/uwsgi;
  scgi_temp_path ${d}/scgi;
  server {
    listen 127.0.0.1:${this.port};
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;
      proxy_read_timeout 120s;
    }
  }
}
`;
    const confFile = join(d, 'nginx.conf');
    writeFileSync(confFile, conf);
    const child = spawn(bin, ['-e', join(d, 'error.log'), '-p', d, '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) => child.once('exit', () => (live.delete(child), resolve())));
    let gone = false;
    void this.exited.then(() => (gone = true));
    await until(
      async () => {
        if (gone) throw new Error(`nginx exited before listening on ${this.port}: ${stderr.trim()} ${this.errors()}`);
        try {
          await fetch(`http://127.0.0.1:${this.port}/healthz`);
          return true;
        } catch {
          return false;
        }
      },
      { ms: 10_000, what: `nginx to listen on ${this.port}` },
    );
  }

  /** Its access log so far. */
  accessLog() {
    const file = join(this.dir, 'access.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  errors() {
    const file = join(this.dir, 'error.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
