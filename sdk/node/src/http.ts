/**
 * The HTTP transports for networks that refuse WebSocket upgrades:
 * Server-Sent Events (`GET /api/v1/agent/stream`) and long-poll
 * (`GET /api/v1/agent/poll`), both answered by batched `POST
 * /api/v1/agent/stream/{session_id}/acks` (docs/api-reference.md, "HTTP
 * sessions"). They carry the WebSocket's JSON frames unchanged, so the
 * client hands their frames to the same code as the WebSocket's.
 *
 * Requests go through the same proxy as the WebSocket: `https://` relays
 * through a CONNECT tunnel (the relay's TLS inside it), `http://` relays as
 * ordinary forward-proxy requests (an absolute URI to the proxy, as curl
 * does), both with the proxy's basic auth.
 */
import http from 'node:http';
import type { Agent, ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';

import type { ProxyChoice, TunnelAnswer } from './proxy.js';
import { tunnelAgent } from './proxy.js';

/** A transport: the WebSocket, Server-Sent Events, or long-poll. */
export type TransportName = 'ws' | 'sse' | 'poll';

/** An ack or a nack, as the WebSocket frames write them. */
export type Answer = { type: 'ack'; id: string } | { type: 'nack'; id: string; reason: string };

/** One session's connection, whatever the transport. */
export interface Link {
  readonly transport: TransportName;
  /** True while answers can still reach the relay. */
  isOpen(): boolean;
  /** Sends an ack or nack (batched per request on the HTTP transports). */
  answer(frame: Answer): void;
  /** Ends the session in order: answers already given are sent first. */
  close(): void;
  /** Drops it at once. */
  terminate(): void;
}

/** What an HTTP link tells the client. */
export interface LinkHooks {
  /** The request reached the relay's session (SSE: the 200 answer; poll: the first answer). */
  opened(): void;
  /** One JSON frame (`ready`, `event`, `error`). */
  frame(frame: any): void;
  /** Bytes arrived (keep-alive comments included). */
  heard(): void;
  /** The opening request was answered with something else than the session. */
  refused(status: number, headers: IncomingMessage['headers'], body: string): void;
  /** The request failed on the way (`opened` tells whether the session had started). */
  failed(error: Error): void;
  /** The session ended; called once, last. `code` as a WebSocket close code (1000, 1006, 1012, 4003). */
  closed(code: number, reason: string): void;
  /** Something worth a debug line. */
  debug(message: string): void;
}

/** How requests reach the relay. */
export interface HttpRoute {
  proxy: ProxyChoice | null;
  /** The caller's own agent (then no proxy). */
  agent?: Agent;
  /** TLS options for the relay (`ca`, ...). */
  tls: Record<string, unknown>;
  /** Authorization and User-Agent. */
  headers: Record<string, string>;
}

/** Keys of `webSocketOptions` that are TLS settings, passed on to the HTTP transports' requests. */
export const TLS_OPTION_KEYS = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'rejectUnauthorized',
  'servername',
  'checkServerIdentity',
  'ciphers',
  'minVersion',
  'maxVersion',
  'secureOptions',
  'family',
  'lookup',
] as const;

/** Starts one request to the relay along `route`; `onTunnel` hears a CONNECT answer. */
export function relayRequest(
  route: HttpRoute,
  url: URL,
  method: string,
  extraHeaders: OutgoingHttpHeaders,
  onTunnel?: (answer: TunnelAnswer) => void,
): ClientRequest {
  const headers: OutgoingHttpHeaders = { ...route.headers, ...extraHeaders };
  const secure = url.protocol === 'https:';
  const proxy = route.proxy;
  if (proxy && !secure && !route.agent) {
    // Forward-proxy request: the absolute URI to the proxy.
    if (proxy.hasCredentials) {
      const user = decodeURIComponent(proxy.url.username);
      const pass = decodeURIComponent(proxy.url.password);
      headers['Proxy-Authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    headers.Host = url.host;
    const viaTls = proxy.url.protocol === 'https:';
    const options = {
      host: proxy.url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(proxy.url.port) || (viaTls ? 443 : 80),
      path: url.href,
      method,
      headers,
      agent: false as const,
    };
    return viaTls ? https.request(options) : http.request(options);
  }
  let agent: Agent | false = route.agent ?? false;
  if (proxy && !route.agent) agent = tunnelAgent(proxy, onTunnel ?? (() => {}));
  const options = { method, headers, agent, ...(secure ? route.tls : {}) };
  return secure ? https.request(url, options) : http.request(url, options);
}

/** Reads at most 64 KiB of an answer, for 5 s at most. */
export function readSmallBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => finish(), 5_000);
    const finish = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 64 * 1024) chunks.push(chunk);
    });
    res.on('end', finish);
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Most answers in one acks request (the relay takes up to 10,000). */
const MAX_BATCH = 5_000;
/** Tries of one batch of answers on 503 or a network error. */
const ANSWER_TRIES = 5;

/**
 * What both HTTP transports share: the acks batching and the bookkeeping
 * of the session's end.
 */
abstract class HttpLink implements Link {
  abstract readonly transport: TransportName;
  protected sessionId: string | null = null;
  protected ended = false;
  #pending: Answer[] = [];
  #posting = false;
  #scheduled = false;
  #drained: Array<() => void> = [];
  #closing = false;

  constructor(
    protected readonly base: URL,
    protected readonly route: HttpRoute,
    protected readonly hooks: LinkHooks,
  ) {}

  isOpen(): boolean {
    return !this.ended && !this.#closing && this.sessionId !== null;
  }

  answer(frame: Answer): void {
    if (this.ended || this.sessionId === null) return;
    this.#pending.push(frame);
    if (!this.#posting && !this.#scheduled) {
      // Answers given in the same turn of the event loop go in one request.
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.#flush();
      });
    }
  }

  close(): void {
    if (this.ended || this.#closing) return;
    this.#closing = true;
    // Answers first (at most 5 s), then the session.
    const stop = () => this.end(1000, 'closed by the client');
    const timer = setTimeout(stop, 5_000);
    this.#whenDrained().then(() => {
      clearTimeout(timer);
      stop();
    });
  }

  terminate(): void {
    this.end(1006, 'dropped by the client');
  }

  /** Ends the session once: stops requests, then tells the client. */
  protected end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.stop();
    for (const wake of this.#drained.splice(0)) wake();
    this.hooks.closed(code, reason);
  }

  /** Aborts what the transport has in flight. */
  protected abstract stop(): void;

  #whenDrained(): Promise<void> {
    if (!this.#posting && !this.#scheduled && this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  async #flush(): Promise<void> {
    if (this.#posting || this.ended || this.#pending.length === 0 || this.sessionId === null) {
      if (!this.#posting && !this.#scheduled && this.#pending.length === 0) for (const wake of this.#drained.splice(0)) wake();
      return;
    }
    const batch = this.#pending.splice(0, MAX_BATCH);
    this.#posting = true;
    try {
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.#post(batch);
        if (outcome === 'done' || this.ended) break;
        if (outcome === 'gone') {
          this.end(1006, 'the relay no longer knows this session (404 session_not_found)');
          break;
        }
        if (attempt >= ANSWER_TRIES) {
          this.hooks.debug(`giving up on ${batch.length} answer(s); the relay redelivers those events after the ack timeout`);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    } finally {
      this.#posting = false;
    }
    void this.#flush();
  }

  /** One acks request: `done`, `retry` (503, network) or `gone` (404: the session ended). */
  #post(batch: Answer[]): Promise<'done' | 'retry' | 'gone'> {
    const acks = batch.filter((a) => a.type === 'ack').map((a) => ({ id: a.id }));
    const nacks = batch.filter((a): a is Extract<Answer, { type: 'nack' }> => a.type === 'nack').map((a) => ({ id: a.id, reason: a.reason }));
    const body = Buffer.from(JSON.stringify({ acks, nacks }));
    const url = new URL(`${this.base.pathname.replace(/\/+$/, '')}/api/v1/agent/stream/${encodeURIComponent(this.sessionId!)}/acks`, this.base);
    return new Promise((resolve) => {
      let req: ClientRequest;
      try {
        req = relayRequest(this.route, url, 'POST', { 'content-type': 'application/json', 'content-length': body.length });
      } catch (err) {
        this.hooks.debug(`could not send answers: ${(err as Error).message}`);
        resolve('retry');
        return;
      }
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        if (status === 200) resolve('done');
        else if (status === 404) resolve('gone');
        else if (status === 503 || status === 429 || status >= 500) resolve('retry');
        else {
          this.hooks.debug(`the relay refused ${batch.length} answer(s) with HTTP ${status}`);
          resolve('done');
        }
      });
      req.on('error', (err) => {
        this.hooks.debug(`could not send answers: ${err.message}`);
        resolve('retry');
      });
      req.end(body);
    });
  }
}

/** The close code a session-ending `error` frame stands for. */
function closeCodeFor(frame: any): number | undefined {
  if (frame?.type !== 'error') return undefined;
  if (frame.code === 'agent_revoked') return 4003;
  if (frame.code === 'relay_restarting') return 1012;
  return 1011;
}

/** A Server-Sent Events session: one streamed `GET`. */
export class SseLink extends HttpLink {
  readonly transport = 'sse' as const;
  #req: ClientRequest | null = null;
  #closeCode = 1006;
  #closeReason = 'the event stream ended';

  constructor(base: URL, query: string, route: HttpRoute, hooks: LinkHooks, onTunnel: (answer: TunnelAnswer) => void) {
    super(base, route, hooks);
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}/api/v1/agent/stream${query}`, base);
    const req = relayRequest(route, url, 'GET', { accept: 'text/event-stream', 'cache-control': 'no-cache' }, onTunnel);
    this.#req = req;
    let opened = false;
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const type = String(res.headers['content-type'] ?? '');
      if (status !== 200 || !type.startsWith('text/event-stream')) {
        readSmallBody(res)
          .catch(() => '')
          .then((body) => {
            if (this.ended) return;
            hooks.refused(status, res.headers, body);
            this.end(1006, `HTTP ${status}`);
          });
        return;
      }
      opened = true;
      hooks.opened();
      this.#read(res);
    });
    req.on('error', (err) => {
      if (this.ended) return;
      if (!opened) hooks.failed(err);
      this.end(this.#closeCode, this.#closeReason);
    });
    req.end();
  }

  #read(res: IncomingMessage): void {
    res.setEncoding('utf8');
    let buffer = '';
    let data: string[] = [];
    res.on('data', (chunk: string) => {
      this.hooks.heard();
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (line === '') {
          if (data.length > 0) this.#message(data.join('\n'));
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
        // `id:`, comments (keep-alives) and other fields: nothing to do.
        if (this.ended) return;
      }
    });
    res.on('end', () => this.end(this.#closeCode, this.#closeReason));
    res.on('error', () => this.end(this.#closeCode, this.#closeReason));
    res.on('close', () => this.end(this.#closeCode, this.#closeReason));
  }

  #message(text: string): void {
    let frame: any;
    try {
      frame = JSON.parse(text);
    } catch {
      this.hooks.debug('ignoring a stream message that is not JSON');
      return;
    }
    if (frame?.type === 'ready' && typeof frame.session_id === 'string') this.sessionId = frame.session_id;
    const code = closeCodeFor(frame);
    if (code !== undefined) {
      this.#closeCode = code;
      this.#closeReason = String(frame.message ?? frame.code ?? '');
    }
    this.hooks.frame(frame);
  }

  protected stop(): void {
    this.#req?.destroy();
    this.#req = null;
  }
}

/** Seconds a poll waits for events. */
const POLL_WAIT_S = 25;

/** A long-poll session: one waiting `GET` after the other. */
export class PollLink extends HttpLink {
  readonly transport = 'poll' as const;
  #req: ClientRequest | null = null;
  readonly #query: URLSearchParams;

  constructor(base: URL, query: string, route: HttpRoute, hooks: LinkHooks, onTunnel: (answer: TunnelAnswer) => void) {
    super(base, route, hooks);
    this.#query = new URLSearchParams(query.replace(/^\?/, ''));
    this.#poll(true, onTunnel);
  }

  #poll(first: boolean, onTunnel?: (answer: TunnelAnswer) => void): void {
    if (this.ended) return;
    const query = first ? new URLSearchParams(this.#query) : new URLSearchParams();
    if (this.sessionId) query.set('session_id', this.sessionId);
    const wait = first ? 0 : POLL_WAIT_S;
    query.set('wait', String(wait));
    // Commas and stars of the events filter stay literal.
    const search = query.toString().replace(/%2C/gi, ',').replace(/%2A/gi, '*');
    const url = new URL(`${this.base.pathname.replace(/\/+$/, '')}/api/v1/agent/poll?${search}`, this.base);
    const req = relayRequest(this.route, url, 'GET', { accept: 'application/json' }, onTunnel);
    this.#req = req;
    req.setTimeout((wait + 15) * 1000, () => req.destroy(new Error(`no answer to a poll within ${wait + 15} s`)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      readBody(res)
        .then((body) => {
          if (this.ended || this.#req !== req) return;
          this.hooks.heard();
          if (status !== 200) {
            if (first) {
              this.hooks.refused(status, res.headers, body.toString('utf8'));
              this.end(1006, `HTTP ${status}`);
              return;
            }
            let code: string | undefined;
            try {
              code = JSON.parse(body.toString('utf8'))?.error?.code;
            } catch {
              /* not the relay's JSON */
            }
            if (status === 403 && code === 'agent_revoked') return this.end(4003, 'the agent was revoked');
            if (status === 503 && code === 'relay_restarting') return this.end(1012, 'the relay is restarting');
            if (status === 401) return this.end(4001, 'the relay refused the API key');
            return this.end(1006, `a poll was answered HTTP ${status}${code ? ` ${code}` : ''}`);
          }
          let answer: any;
          try {
            answer = JSON.parse(body.toString('utf8'));
          } catch {
            if (first) {
              this.hooks.refused(status, res.headers, body.toString('utf8'));
              return this.end(1006, 'a poll answer that is not JSON');
            }
            return this.end(1006, 'a poll answer that is not JSON');
          }
          if (first) {
            if (typeof answer?.session_id !== 'string' || !answer.ready) {
              this.hooks.refused(status, res.headers, body.toString('utf8'));
              return this.end(1006, 'the first poll answer has no session');
            }
            this.sessionId = answer.session_id;
            this.hooks.opened();
            this.hooks.frame(answer.ready);
          }
          for (const frame of Array.isArray(answer?.events) ? answer.events : []) {
            if (this.ended) return;
            this.hooks.frame(frame);
          }
          this.#poll(false);
        })
        .catch((err: Error) => {
          if (this.ended || this.#req !== req) return;
          if (first) this.hooks.failed(err);
          this.end(1006, `a poll failed: ${err.message}`);
        });
    });
    req.on('error', (err) => {
      if (this.ended || this.#req !== req) return;
      if (first) this.hooks.failed(err);
      this.end(1006, `a poll failed: ${err.message}`);
    });
    req.end();
  }

  protected stop(): void {
    const req = this.#req;
    this.#req = null;
    req?.destroy();
  }
}

/** A whole answer body (polls: up to max_in_flight events; 256 MiB at most). */
function readBody(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 256 * 1024 * 1024) {
        res.destroy(new Error('a poll answer over 256 MiB'));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the poll answer was cut short')));
  });
}
