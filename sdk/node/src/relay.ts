/**
 * The WebSocket client: connects to the relay as an agent, hands each event
 * to the `webhook` listeners, acks when they have all finished, and keeps
 * the connection up (heartbeats, reconnects with backoff).
 *
 * Wire protocol: interface section 6, docs/api-reference.md.
 */
import { EventEmitter } from 'node:events';
import type { Agent, IncomingMessage } from 'node:http';

import WebSocket from 'ws';
import type { ClientOptions, RawData } from 'ws';

import {
  AuthenticationError,
  ClosedError,
  ConfigurationError,
  ConnectionError,
  HandlerError,
  ProxyError,
  RelayError,
  TimeoutError,
} from './errors.js';
import { WebhookEvent } from './event.js';
import type { EventFrame } from './event.js';
import { PollLink, SseLink, TLS_OPTION_KEYS, readSmallBody } from './http.js';
import type { Answer, HttpRoute, Link, LinkHooks, TransportName } from './http.js';
import { Backoff, DEFAULT_RELAY_URL, HandledIds, connectUrl, matchesAny, parsePatterns } from './internal.js';
import { chooseProxy, tunnelAgent } from './proxy.js';
import type { ProxyChoice, TunnelAnswer } from './proxy.js';
import { VERSION } from './version.js';

/** Where the SDK writes what it does. Any method may be left out. */
export interface Logger {
  debug?(message: string, ...rest: unknown[]): void;
  info?(message: string, ...rest: unknown[]): void;
  warn?(message: string, ...rest: unknown[]): void;
  error?(message: string, ...rest: unknown[]): void;
}

/** Reconnection delays (the defaults are the CLI's `listen`). */
export interface ReconnectOptions {
  /** Ceiling of the first retry's delay; default 250 ms (the delay is random below it). */
  initialDelayMs?: number;
  /** Ceiling of every delay; default 10 000 ms. */
  maxDelayMs?: number;
  /** A connection that stayed up this long resets the backoff; default 10 000 ms. */
  stableAfterMs?: number;
}

export interface WebhookRelayOptions {
  /**
   * Base URL of the relay: `https://`, `http://`, `wss://` or `ws://`; a path
   * prefix is kept. Default: `LOBSTER_RELAY_URL`, else the hosted relay
   * `https://relay.powerlobster.com`.
   */
  relayUrl?: string;
  /** The agent's API key (`lrk_...`). Default: `LOBSTER_RELAY_API_KEY`. */
  apiKey?: string;
  /** Only receive these event types: glob patterns, e.g. `['message.*', 'ping']` or `'message.*,ping'`. */
  events?: string | readonly string[];
  /** Most handlers running at once; default 10. 1 handles events strictly one after another, in order. */
  maxConcurrency?: number;
  /** `false` to never reconnect; or the backoff limits. Default: reconnect. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Where to log. Default: warnings and errors to `console.error`. Pass
   * `console` for everything, or `null`/`false` for nothing.
   */
  logger?: Logger | null | false;
  /**
   * How long `connect()` keeps trying a relay it cannot reach (refused
   * connection, 5xx, 429) before it rejects; default 30 000 ms.
   */
  connectTimeoutMs?: number;
  /** Interval of the SDK's own WebSocket pings; default 20 000 ms. */
  heartbeatIntervalMs?: number;
  /** Drop (and reconnect) a connection that was silent this long; default 60 000 ms. */
  idleTimeoutMs?: number;
  /** How long a handled event id is remembered to skip redeliveries; default 600 000 ms (10 minutes). */
  dedupeTtlMs?: number;
  /** How many handled ids are remembered at most; default 10 000. */
  dedupeMaxSize?: number;
  /**
   * The HTTP proxy to tunnel through (HTTP CONNECT): a URL such as
   * `http://user:pass@proxy.example.com:3128` to force one, `false` (or
   * `null`) for none. Default: from the environment, `HTTPS_PROXY` for
   * `wss://`, `HTTP_PROXY` for `ws://`, else `ALL_PROXY`, unless `NO_PROXY`
   * lists the relay's host (see docs/sdk.md, "Proxies").
   */
  proxy?: string | false | null;
  /**
   * Extra options for the `ws` client (e.g. `ca` for a private CA; it applies
   * inside a proxy tunnel too). Its TLS settings (`ca`, `cert`, `key`,
   * `rejectUnauthorized`, ...) and `agent` apply to the HTTP transports too.
   */
  webSocketOptions?: WebSocketOptions;
  /**
   * How to reach the relay: `'auto'` (default) tries the WebSocket, then
   * Server-Sent Events when the upgrade is refused (a proxy's 403/400/426/502,
   * or the connection cut during the upgrade), then long-poll when the SSE
   * stream brings no `ready` within `sseReadyTimeoutMs` (a proxy buffering
   * it). Once a transport worked, reconnects start with it. `'ws'`, `'sse'`
   * or `'poll'` use that one only.
   */
  transport?: TransportOption;
  /** With `transport: 'auto'`: how long an SSE stream may go without `ready` before long-poll is tried; default 5 000 ms. */
  sseReadyTimeoutMs?: number;
}

/** The `transport` option. */
export type TransportOption = 'auto' | TransportName;
export type { TransportName };

/**
 * Options handed to the `ws` client as they are (see the `ws` documentation:
 * TLS options such as `ca`, `agent`, `headers`, ...). Typed loosely so that
 * the declarations need no `@types/ws`.
 */
export interface WebSocketOptions {
  /** An HTTP(S) agent of your own; then the `proxy` option and the proxy variables are not used. */
  agent?: Agent;
  /** Extra request headers (Authorization and User-Agent are the SDK's). */
  headers?: Record<string, string>;
  [option: string]: unknown;
}

/** The `connected` event's argument, and what `connect()` resolves with. */
export interface ConnectedInfo {
  /** The agent's webhook URL: give it to the webhook sender. */
  webhookUrl: string;
  agentId: string;
  relayId: string;
  /** This session's id (a new one on every reconnect). */
  sessionId: string;
  /** Most unacked events the relay sends this session at once. */
  maxInFlight: number;
  /** Time the relay gives a handler before it redelivers the event elsewhere. */
  ackTimeoutMs: number;
  /** Protocol version (1). */
  protocol: number;
  /** The transport this session runs on: `'ws'`, `'sse'` or `'poll'`. */
  transport: TransportName;
  /** Why `transport: 'auto'` is not on the WebSocket (the last fallback's reason), if it is not. */
  fallbackReason?: string;
}

/** The `fallback` event's argument: `transport: 'auto'` gave up on one transport for the next. */
export interface FallbackInfo {
  /** The transport that did not work. */
  previous: TransportName;
  /** The transport tried now. */
  transport: TransportName;
  /** Why, in words (e.g. `the WebSocket upgrade was refused (HTTP 403)`). */
  reason: string;
}

/** The `disconnected` event's argument. */
export interface DisconnectedInfo {
  /** WebSocket close code (1006 when the connection was lost without one). */
  code: number;
  /** Why, in words. */
  reason: string;
  /** False when the SDK stops here (`close()`, a revoked or refused key, `reconnect: false`). */
  willReconnect: boolean;
  /** The error behind the disconnect, if it was not a `close()`. */
  error?: RelayError;
}

/** The `reconnecting` event's argument. */
export interface ReconnectingInfo {
  /** 1 for the first retry since the connection was last ready. */
  attempt: number;
  /** Wait before this try. */
  delayMs: number;
  /** Why the previous try or connection failed. */
  error?: RelayError;
}

export interface WaitOptions {
  /** Only resolve with these event types (glob patterns). Default: any event. */
  events?: string | readonly string[];
  /** Reject with a `TimeoutError` after this long. Default: wait forever. */
  timeoutMs?: number;
  /** Abort the wait. */
  signal?: AbortSignal;
}

export interface CloseOptions {
  /** Stop waiting for handlers in flight after this long (their events are redelivered). Default: wait for them. */
  timeoutMs?: number;
}

/** The client's state, as `relay.state` reports it. */
export type RelayState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closing' | 'closed';

/** Listener signatures of the events a `WebhookRelay` emits. */
export interface WebhookRelayEvents {
  connected: (info: ConnectedInfo) => void;
  webhook: (event: WebhookEvent) => unknown;
  disconnected: (info: DisconnectedInfo) => void;
  reconnecting: (info: ReconnectingInfo) => void;
  error: (error: RelayError) => void;
  fallback: (info: FallbackInfo) => void;
}

/** One connection attempt (any transport) and, once `ready` came, its session. */
interface Connection {
  link: Link;
  transport: TransportName;
  /** Set when this attempt failed in a way the next transport may get around (`transport: 'auto'`). */
  fallback?: string;
  ready: boolean;
  readyAt: number;
  lastHeard: number;
  timers: NodeJS.Timeout[];
  readyTimer?: NodeJS.Timeout;
  /** Why it failed, when the failure was known before the close (handshake errors). */
  failure?: RelayError;
  /** The relay's `error` frame, which explains the close that follows. */
  errorFrame?: { code: string; message: string };
  /** Why the SDK dropped it itself. */
  localReason?: string;
  /** The proxy's answer to this connection's CONNECT, once it came. */
  tunnel?: TunnelAnswer;
  /** Resolves when the socket has closed. */
  closed: Promise<void>;
  markClosed: () => void;
}

interface Waiter {
  patterns?: string[];
  resolve(event: WebhookEvent): void;
  reject(error: Error): void;
}

interface PendingConnect {
  promise: Promise<ConnectedInfo>;
  resolve(info: ConnectedInfo): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
  lastError?: RelayError;
}

const DEFAULTS = {
  maxConcurrency: 10,
  connectTimeoutMs: 30_000,
  heartbeatIntervalMs: 20_000,
  idleTimeoutMs: 60_000,
  dedupeTtlMs: 10 * 60_000,
  dedupeMaxSize: 10_000,
  reconnect: { initialDelayMs: 250, maxDelayMs: 10_000, stableAfterMs: 10_000 },
};
/** Time the TCP connect, TLS and upgrade together may take, and then the `ready` frame. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Largest frame accepted (a 1 MiB body as base64 fits many times over). */
const MAX_PAYLOAD = 64 * 1024 * 1024;
/** Nack reasons are cut to this many characters. */
const MAX_REASON = 1000;
/** Longest `Retry-After` honoured, so a bad header cannot park the client. */
const MAX_RETRY_AFTER_MS = 60_000;

const defaultLogger: Logger = {
  warn: (message, ...rest) => console.error(`[@powerlobster/webhook] ${message}`, ...rest),
  error: (message, ...rest) => console.error(`[@powerlobster/webhook] ${message}`, ...rest),
};

export interface WebhookRelay {
  on<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
  addListener<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  addListener(event: string | symbol, listener: (...args: any[]) => void): this;
  prependListener<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
  removeListener<E extends keyof WebhookRelayEvents>(event: E, listener: WebhookRelayEvents[E]): this;
  removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
  emit<E extends keyof WebhookRelayEvents>(event: E, ...args: Parameters<WebhookRelayEvents[E]>): boolean;
  emit(event: string | symbol, ...args: any[]): boolean;
}

/**
 * A connection to the relay as one agent.
 *
 * ```js
 * const relay = new WebhookRelay({ relayUrl: 'wss://relay.example.com', apiKey: process.env.POWERLOBSTER_API_KEY });
 * relay.on('webhook', async (event) => { ... });   // acked when it resolves, nacked when it throws
 * relay.on('connected', (info) => console.log(info.webhookUrl));
 * await relay.connect();
 * ```
 */
export class WebhookRelay extends EventEmitter {
  /** The WebSocket URL the client connects to (events filter included). */
  readonly url: string;
  /** The event-type patterns this client subscribes to, if any. */
  readonly events?: readonly string[];
  /** Most handlers running at once. */
  readonly maxConcurrency: number;
  /** The proxy connections go through, as `scheme://host:port` (no credentials), or null for none. */
  readonly proxy: string | null;

  readonly #apiKey: string;
  readonly #reconnect: boolean;
  readonly #backoff: Backoff;
  readonly #log: Logger;
  readonly #connectTimeoutMs: number;
  readonly #heartbeatMs: number;
  readonly #idleMs: number;
  readonly #wsOptions: WebSocketOptions;
  readonly #proxy: ProxyChoice | null;
  readonly #handled: HandledIds;
  readonly #transportOption: TransportOption;
  readonly #sseReadyMs: number;
  /** The transport the next attempt starts with: the last one that worked (`auto`), else the forced one. */
  #start: TransportName;
  /** The transport of the current (or last) attempt. */
  #transport: TransportName | null = null;
  /** Why the current attempt is not on the WebSocket (auto), for `ConnectedInfo.fallbackReason`. */
  #fallbackReason: string | undefined;

  #state: RelayState = 'idle';
  #conn: Connection | null = null;
  #info: ConnectedInfo | null = null;
  #pending: PendingConnect | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #retries = 0;
  #stopping = false;
  #closing: Promise<void> | null = null;
  /** Events received and waiting for a handler slot, with the connection they came on. */
  #queue: Array<{ event: WebhookEvent; conn: Connection }> = [];
  #running = 0;
  /** Handler runs in progress by event id: a redelivery waits for the run instead of starting another. */
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly #waiters = new Set<Waiter>();
  /** `connect()` calls made while reconnecting: settled by the next `ready` or by stopping. */
  #followers: Array<{ resolve(info: ConnectedInfo): void; reject(error: Error): void }> = [];
  #idleWaiters: Array<() => void> = [];

  constructor(options: WebhookRelayOptions = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw new ConfigurationError('new WebhookRelay(options): options must be an object', 'invalid_options');
    }
    const relayUrl = options.relayUrl ?? process.env.LOBSTER_RELAY_URL ?? DEFAULT_RELAY_URL;
    if (typeof relayUrl !== 'string' || relayUrl.trim() === '') {
      throw new ConfigurationError('relayUrl must be a non-empty string, e.g. https://relay.example.com', 'invalid_relay_url');
    }
    this.events = parsePatterns(options.events);
    this.url = connectUrl(relayUrl.trim(), this.events);

    if (options.apiKey !== undefined && options.apiKey !== null && typeof options.apiKey !== 'string') {
      throw new ConfigurationError('apiKey must be a string', 'invalid_api_key');
    }
    // An empty apiKey (e.g. an unset variable) falls back to the environment too.
    const apiKey = (options.apiKey || process.env.LOBSTER_RELAY_API_KEY || '').trim();
    if (!apiKey) {
      throw new ConfigurationError(
        'no API key: pass { apiKey } to new WebhookRelay() or set LOBSTER_RELAY_API_KEY (create one with `lobster-relay admin create-agent NAME`)',
        'missing_api_key',
      );
    }
    if (/[\s\x00-\x1f\x7f]/.test(apiKey)) {
      throw new ConfigurationError('the API key holds spaces or control characters; check for stray quotes or line breaks', 'invalid_api_key');
    }
    this.#apiKey = apiKey;

    this.maxConcurrency = options.maxConcurrency ?? DEFAULTS.maxConcurrency;
    if (!Number.isInteger(this.maxConcurrency) || this.maxConcurrency < 1) {
      throw new ConfigurationError(
        `maxConcurrency must be a whole number of at least 1 (got ${String(options.maxConcurrency)})`,
        'invalid_max_concurrency',
      );
    }

    const reconnect = options.reconnect ?? true;
    if (typeof reconnect !== 'boolean' && (reconnect === null || typeof reconnect !== 'object')) {
      throw new ConfigurationError('reconnect must be true, false or { initialDelayMs, maxDelayMs, stableAfterMs }', 'invalid_reconnect');
    }
    const limits = { ...DEFAULTS.reconnect, ...(typeof reconnect === 'object' ? reconnect : {}) };
    positive(limits.initialDelayMs, 'reconnect.initialDelayMs');
    positive(limits.maxDelayMs, 'reconnect.maxDelayMs');
    positive(limits.stableAfterMs, 'reconnect.stableAfterMs', true);
    this.#reconnect = reconnect !== false;
    this.#backoff = new Backoff(limits);

    this.#connectTimeoutMs = positive(options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 'connectTimeoutMs');
    this.#heartbeatMs = positive(options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs, 'heartbeatIntervalMs');
    this.#idleMs = positive(options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs, 'idleTimeoutMs');
    this.#handled = new HandledIds(
      positive(options.dedupeTtlMs ?? DEFAULTS.dedupeTtlMs, 'dedupeTtlMs', true),
      positive(options.dedupeMaxSize ?? DEFAULTS.dedupeMaxSize, 'dedupeMaxSize', true),
    );
    this.#log = options.logger === null || options.logger === false ? {} : (options.logger ?? defaultLogger);
    this.#wsOptions = options.webSocketOptions ?? {};
    if (this.#wsOptions.agent !== undefined && options.proxy !== undefined && options.proxy !== false && options.proxy !== null) {
      throw new ConfigurationError('pass either proxy or webSocketOptions.agent, not both', 'invalid_proxy');
    }
    // An agent of the caller's own decides the route; else the option or the environment.
    this.#proxy = this.#wsOptions.agent !== undefined ? null : chooseProxy(this.url, options.proxy);
    this.proxy = this.#proxy?.display ?? null;

    const transport = options.transport ?? 'auto';
    if (!['auto', 'ws', 'sse', 'poll'].includes(transport as string)) {
      throw new ConfigurationError(`transport must be 'auto', 'ws', 'sse' or 'poll' (got ${JSON.stringify(transport)})`, 'invalid_transport');
    }
    this.#transportOption = transport;
    this.#start = transport === 'auto' ? 'ws' : transport;
    this.#sseReadyMs = positive(options.sseReadyTimeoutMs ?? 5_000, 'sseReadyTimeoutMs');
  }

  /**
   * The transport in use (`'ws'`, `'sse'` or `'poll'`), or being tried while
   * connecting; `null` before the first attempt.
   */
  get transport(): TransportName | null {
    return this.#transport;
  }

  /** `idle` → `connecting` → `connected` (⇄ `reconnecting`) → `closing` → `closed`. */
  get state(): RelayState {
    return this.#state;
  }

  /** The current session, while connected; `null` otherwise. */
  get session(): ConnectedInfo | null {
    return this.#state === 'connected' ? this.#info : null;
  }

  /**
   * Connects and resolves once the relay sent `ready` (the same info as the
   * `connected` event); the client then stays connected, reconnecting by
   * itself, until `close()`.
   *
   * Rejects with an `AuthenticationError` at once, without retrying, when
   * the relay refuses the key (HTTP 401/403, close 4001/4003). A relay that
   * cannot be reached (refused connection, 5xx, 429) is retried with
   * backoff, emitting `reconnecting`, for up to `connectTimeoutMs`; then (or
   * at once with `reconnect: false`, or for answers a retry cannot change,
   * such as HTTP 404 or 400) it rejects with a `ConnectionError`.
   */
  connect(): Promise<ConnectedInfo> {
    if (this.#closing) return Promise.reject(new ClosedError('close() is in progress; await it before connecting again'));
    if (this.#state === 'connected' && this.#info) return Promise.resolve(this.#info);
    if (this.#pending) return this.#pending.promise;
    if (this.#state === 'reconnecting') {
      // Already reconnecting after a drop: resolve with the next `ready`.
      return new Promise((resolve, reject) => this.#followers.push({ resolve, reject }));
    }
    let resolve!: (info: ConnectedInfo) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<ConnectedInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const pending: PendingConnect = { promise, resolve, reject };
    pending.timer = setTimeout(() => {
      if (this.#pending !== pending) return;
      const last = pending.lastError;
      const message =
        `could not connect to the relay at ${this.url} within ${this.#connectTimeoutMs} ms` + (last ? `: ${last.message}` : '');
      this.#failPending(
        last instanceof ProxyError
          ? new ProxyError(message, last.code, { proxy: last.proxy, status: last.status, retryable: true, cause: last })
          : new ConnectionError(message, last?.code ?? 'connect_timeout', { cause: last, retryable: true }),
      );
    }, this.#connectTimeoutMs);
    this.#pending = pending;
    this.#stopping = false;
    this.#retries = 0;
    this.#backoff.reset();
    this.#open();
    return promise;
  }

  /**
   * Resolves with the next event (matching `events`, if given) once the
   * `webhook` listeners have handled it and it was acked. Connects first if
   * `connect()` was not called. Rejects with a `TimeoutError` after
   * `timeoutMs`. Without `webhook` listeners, events that no `wait()` wants
   * are nacked (the relay retries them), never acked unseen.
   */
  wait(options: WaitOptions = {}): Promise<WebhookEvent> {
    let patterns: string[] | undefined;
    try {
      patterns = parsePatterns(options.events, 'wait({ events })');
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))) {
      return Promise.reject(new ConfigurationError('wait({ timeoutMs }) must be a number of milliseconds >= 0', 'invalid_timeout'));
    }
    return new Promise<WebhookEvent>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => done(new RelayError('wait() was aborted', 'aborted', { cause: options.signal?.reason }));
      const done = (error: Error | null, event?: WebhookEvent) => {
        if (!this.#waiters.delete(waiter)) return;
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve(event!);
      };
      const waiter: Waiter = {
        patterns,
        resolve: (event) => done(null, event),
        reject: (error) => done(error),
      };
      this.#waiters.add(waiter);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () =>
            done(new TimeoutError(`no event${patterns ? ` matching ${patterns.join(',')}` : ''} arrived within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }
      if (this.#state === 'idle' || this.#state === 'closed') this.connect().catch((err) => done(err));
    });
  }

  /**
   * Stops: no new events are started (those received but not started go back
   * to the relay), handlers in flight finish and are acked, then the
   * connection closes with code 1000. Pending `wait()` calls reject with a
   * `ClosedError`. The client may `connect()` again afterwards.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#state === 'idle' || this.#state === 'closed') {
      this.#state = 'closed';
      this.#rejectWaiters(new ClosedError());
      return Promise.resolve();
    }
    this.#stopping = true;
    this.#state = 'closing';
    this.#clearReconnect();
    if (this.#pending) this.#failPending(new ClosedError('close() was called before the relay was ready'), false);
    this.#queue = [];
    this.#closing = (async () => {
      await this.#whenIdle(options.timeoutMs);
      const conn = this.#conn;
      if (conn) {
        conn.link.close();
        const forced = setTimeout(() => conn.link.terminate(), 6_000);
        await conn.closed;
        clearTimeout(forced);
      }
      this.#rejectWaiters(new ClosedError());
      this.#state = 'closed';
      this.#stopping = false;
      this.#closing = null;
    })();
    return this.#closing;
  }

  // ---- connection -------------------------------------------------------

  /** Starts one attempt, on the transport the last one that worked used (or the forced one). */
  #open(transport: TransportName = this.#start): void {
    this.#state = this.#pending ? 'connecting' : 'reconnecting';
    this.#transport = transport;
    if (transport === 'ws') this.#fallbackReason = undefined;
    if (transport === 'ws') this.#openWs();
    else this.#openHttp(transport);
  }

  /** Opens one WebSocket and wires its events. */
  #openWs(): void {
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => (markClosed = resolve));
    const options: ClientOptions = {
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      maxPayload: MAX_PAYLOAD,
      perMessageDeflate: false,
      ...(this.#wsOptions as ClientOptions),
      headers: {
        ...(this.#wsOptions.headers ?? {}),
        Authorization: `Bearer ${this.#apiKey}`,
        'User-Agent': `powerlobster-webhook-node/${VERSION} node/${process.versions.node}`,
      },
    };
    const proxy = this.#proxy;
    let conn!: Connection;
    if (proxy) options.agent = tunnelAgent(proxy, (answer) => (conn.tunnel = answer));
    const ws = new WebSocket(this.url, options);
    const link: Link = {
      transport: 'ws',
      isOpen: () => ws.readyState === WebSocket.OPEN,
      answer: (frame: Answer) =>
        ws.send(JSON.stringify(frame), (err) => {
          if (err) this.#log.debug?.(`could not send ${frame.type} for ${frame.id}: ${err.message}`);
        }),
      close: () => (ws.readyState === WebSocket.OPEN ? ws.close(1000, 'client closing') : ws.terminate()),
      terminate: () => ws.terminate(),
    };
    conn = { link, transport: 'ws', ready: false, readyAt: 0, lastHeard: Date.now(), timers: [], closed, markClosed };
    this.#conn = conn;
    this.#log.debug?.(`connecting to ${this.url}${proxy ? ` through the proxy ${proxy.display} (${proxy.source})` : ''}`);

    ws.on('unexpected-response', (_req, res) => {
      void this.#onRefused(conn, res);
    });
    ws.on('error', (err: Error) => {
      if (proxy && !conn.tunnel) {
        conn.failure ??= new ProxyError(
          `could not reach the proxy ${proxy.display} (${proxy.source}) on the way to the relay: ${err.message}`,
          'proxy_unreachable',
          { proxy: proxy.display, cause: err },
        );
        return;
      }
      const via = proxy ? ` through the proxy ${proxy.display}` : '';
      // An error after a refusal is the SDK's own terminate(): the refusal decides.
      if (conn.failure) return;
      conn.failure = new ConnectionError(`could not reach the relay at ${this.url}${via}: ${err.message}`, 'connection_failed', {
        cause: err,
      });
      if (!conn.ready && cutDuringUpgrade(err)) conn.fallback ??= `the connection was cut during the WebSocket upgrade (${err.message})`;
    });
    ws.on('open', () => {
      conn.lastHeard = Date.now();
      // The relay sends `ready` first; give up on a relay that never does.
      conn.readyTimer = setTimeout(() => {
        if (conn.ready) return;
        conn.localReason = `no ready frame within ${HANDSHAKE_TIMEOUT_MS} ms`;
        conn.fallback ??= `the WebSocket opened but no ready frame came within ${HANDSHAKE_TIMEOUT_MS} ms`;
        ws.terminate();
      }, HANDSHAKE_TIMEOUT_MS);
      conn.timers.push(conn.readyTimer);
      // Our own pings, and the idle check: a side that hears nothing for
      // idleTimeoutMs drops the connection.
      const tick = Math.min(this.#heartbeatMs, Math.max(50, Math.floor(this.#idleMs / 3)));
      let sinceLastPing = 0;
      const heartbeat = setInterval(() => {
        if (Date.now() - conn.lastHeard >= this.#idleMs) {
          conn.localReason = `no frame, ping or pong from the relay for ${Math.round(this.#idleMs / 1000)} s`;
          this.#log.warn?.(`${conn.localReason}; dropping the connection`);
          ws.terminate();
          return;
        }
        sinceLastPing += tick;
        if (sinceLastPing >= this.#heartbeatMs) {
          sinceLastPing = 0;
          try {
            ws.ping();
          } catch {
            /* closing anyway */
          }
        }
      }, tick);
      heartbeat.unref();
      conn.timers.push(heartbeat);
    });
    const heard = () => {
      conn.lastHeard = Date.now();
    };
    ws.on('ping', heard);
    ws.on('pong', heard);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      heard();
      this.#onFrame(conn, data, isBinary);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      for (const timer of conn.timers) clearTimeout(timer);
      conn.markClosed();
      this.#onClose(conn, code, reason.toString('utf8'));
    });
  }

  /** Opens one SSE or long-poll session and wires it like a WebSocket. */
  #openHttp(transport: 'sse' | 'poll'): void {
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => (markClosed = resolve));
    const ws = new URL(this.url);
    const base = new URL(`${ws.protocol === 'wss:' ? 'https:' : 'http:'}//${ws.host}${ws.pathname.replace(/\/api\/v1\/agent\/connect$/, '')}`);
    const tls: Record<string, unknown> = {};
    for (const key of TLS_OPTION_KEYS) if (this.#wsOptions[key] !== undefined) tls[key] = this.#wsOptions[key];
    const route: HttpRoute = {
      proxy: this.#proxy,
      agent: this.#wsOptions.agent,
      tls,
      headers: {
        ...(this.#wsOptions.headers ?? {}),
        Authorization: `Bearer ${this.#apiKey}`,
        'User-Agent': `powerlobster-webhook-node/${VERSION} node/${process.versions.node}`,
      },
    };
    const proxy = this.#proxy;
    let conn!: Connection;
    const hooks: LinkHooks = {
      opened: () => {
        conn.lastHeard = Date.now();
        const tick = Math.max(50, Math.min(5_000, Math.floor(this.#idleMs / 3)));
        const idle = setInterval(() => {
          // Polls wait up to 25 s for an answer: their own timeout covers them.
          if (transport === 'poll' || Date.now() - conn.lastHeard < this.#idleMs) return;
          conn.localReason = `nothing from the relay on the SSE stream for ${Math.round(this.#idleMs / 1000)} s`;
          this.#log.warn?.(`${conn.localReason}; dropping the connection`);
          conn.link.terminate();
        }, tick);
        idle.unref();
        conn.timers.push(idle);
      },
      frame: (frame) => this.#onMessage(conn, frame),
      heard: () => {
        conn.lastHeard = Date.now();
      },
      refused: (status, headers, body) => this.#refused(conn, status, headers, body),
      failed: (err) => {
        if (proxy && !conn.tunnel && isUnreachable(err)) {
          // Nothing answered at the proxy's address (a forward request or a CONNECT).
          conn.failure ??= new ProxyError(
            `could not reach the proxy ${proxy.display} (${proxy.source}) on the way to the relay: ${err.message}`,
            'proxy_unreachable',
            { proxy: proxy.display, cause: err },
          );
          return;
        }
        const via = proxy ? ` through the proxy ${proxy.display}` : '';
        conn.failure ??= new ConnectionError(`could not reach the relay at ${this.url}${via}: ${err.message}`, 'connection_failed', {
          cause: err,
        });
        if (transport === 'sse' && cutDuringUpgrade(err)) conn.fallback ??= `the SSE request was cut (${err.message})`;
      },
      closed: (code, reason) => {
        for (const timer of conn.timers) clearTimeout(timer);
        conn.markClosed();
        this.#onClose(conn, code, reason);
      },
      debug: (message) => this.#log.debug?.(message),
    };
    const query = ws.search;
    const onTunnel = (answer: TunnelAnswer) => (conn.tunnel = answer);
    // The link starts its request at once; `conn` must exist before any callback (they all run later).
    const link = transport === 'sse' ? new SseLink(base, query, route, hooks, onTunnel) : new PollLink(base, query, route, hooks, onTunnel);
    conn = { link, transport, ready: false, readyAt: 0, lastHeard: Date.now(), timers: [], closed, markClosed };
    this.#conn = conn;
    if (transport === 'sse') {
      // A stream that a proxy holds back (its headers too) brings no `ready`: long-poll then.
      const wait = this.#transportOption === 'auto' ? this.#sseReadyMs : HANDSHAKE_TIMEOUT_MS;
      conn.readyTimer = setTimeout(() => {
        if (conn.ready) return;
        conn.localReason = `no ready message on the SSE stream within ${wait} ms`;
        conn.fallback ??= `no ready message on the SSE stream within ${wait} ms (a proxy buffering the stream?)`;
        conn.link.terminate();
      }, wait);
      conn.timers.push(conn.readyTimer);
    }
    this.#log.debug?.(
      `connecting to ${base.href} (${transport === 'sse' ? 'Server-Sent Events' : 'long-poll'})${proxy ? ` through the proxy ${proxy.display} (${proxy.source})` : ''}`,
    );
  }

  /** The relay answered the upgrade with an HTTP error: read why, then drop the socket. */
  async #onRefused(conn: Connection, res: IncomingMessage): Promise<void> {
    if (this.#proxy && conn.tunnel && conn.tunnel.statusCode !== 200) {
      res.resume();
      this.#refused(conn, res.statusCode ?? 0, res.headers, '');
    } else {
      this.#refused(conn, res.statusCode ?? 0, res.headers, await readSmallBody(res).catch(() => ''));
    }
    conn.link.terminate();
  }

  /**
   * What an HTTP answer other than the session means (`conn.failure`), and
   * whether the next transport may get around it (`conn.fallback`): anything
   * but the relay's own refusals (its JSON errors: a bad key, a revoked
   * agent, too many sessions, a restart) is taken for a proxy in the way.
   */
  #refused(conn: Connection, status: number, headers: IncomingMessage['headers'], body: string): void {
    const what = { ws: 'the WebSocket upgrade', sse: 'the SSE stream', poll: 'the first poll' }[conn.transport];
    if (this.#proxy && conn.tunnel && conn.tunnel.statusCode !== 200) {
      // The proxy's answer to CONNECT, replayed: the relay never saw the request.
      const tunnel = conn.tunnel;
      conn.failure ??= this.#tunnelRefused(this.#proxy, tunnel);
      if (tunnel.statusCode !== 407 && tunnel.statusCode !== 401) {
        conn.fallback ??= `the proxy ${this.#proxy.display} refused the tunnel for ${what} (HTTP ${tunnel.statusCode}${tunnel.statusText ? ` ${tunnel.statusText}` : ''})`;
      }
      return;
    }
    if (this.#proxy && status === 407) {
      // A forward-proxy request (http:// relay) the proxy wants credentials for.
      conn.failure ??= this.#tunnelRefused(this.#proxy, { statusCode: status, statusText: 'Proxy Authentication Required' });
      return;
    }
    let code: string | undefined;
    let said: string | undefined;
    try {
      const parsed = JSON.parse(body);
      code = typeof parsed?.error?.code === 'string' ? parsed.error.code : undefined;
      said = typeof parsed?.error?.message === 'string' ? parsed.error.message : undefined;
    } catch {
      /* not the relay's JSON error */
    }
    if (status !== 401 && (code === undefined || code === 'websocket_required')) {
      conn.fallback ??= `${what} was refused (HTTP ${status}${code ? ` ${code}` : ''}${this.#proxy ? `, through the proxy ${this.#proxy.display}` : ', by a proxy?'})`;
    }
    const detail = said ? `: ${said}` : '';
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    let failure: RelayError;
    if (this.#proxy && code === undefined && status >= 500) {
      // A forward-proxy request (http:// relay) that the proxy could not pass on.
      failure = new ProxyError(
        `the proxy ${this.#proxy.display} could not reach the relay at ${new URL(this.url).host} (HTTP ${status}); is the relay up and reachable from the proxy?`,
        'proxy_refused',
        { proxy: this.#proxy.display, status, retryable: true },
      );
    } else if (status === 401 || status === 403) {
      failure = new AuthenticationError(
        `the relay refused the API key (HTTP ${status}${detail}); check apiKey / LOBSTER_RELAY_API_KEY, or ask the relay admin for a new key`,
        code ?? 'unauthorized',
        { status },
      );
    } else if (status === 429 || status === 408 || status >= 500) {
      failure = new ConnectionError(
        status === 429
          ? `the relay refused another session (HTTP 429${detail}); this agent may have as many live sessions as the relay allows`
          : `the relay answered HTTP ${status}${detail}`,
        code ?? `http_${status}`,
        { status, retryAfterMs, retryable: true },
      );
    } else if (status === 400) {
      failure = new ConnectionError(`the relay refused to open the session (HTTP 400${detail})`, code ?? 'http_400', {
        status,
        retryable: false,
      });
    } else {
      failure = new ConnectionError(
        `the relay answered HTTP ${status} instead of opening ${conn.transport === 'ws' ? 'a WebSocket' : 'a session'}${detail}; is relayUrl the relay's base URL? (connecting to ${this.url})`,
        code ?? `http_${status}`,
        { status, retryable: false },
      );
    }
    conn.failure ??= failure;
  }

  /** What the proxy's refusal of a tunnel means. */
  #tunnelRefused(proxy: ProxyChoice, answer: TunnelAnswer): ProxyError {
    const status = answer.statusCode;
    const said = `HTTP ${status}${answer.statusText ? ` ${answer.statusText}` : ''}`;
    const details = { proxy: proxy.display, status, retryable: false };
    // 407 is the standard answer; some proxies (tinyproxy) answer wrong credentials with 401.
    if (status === 407 || status === 401) {
      return proxy.hasCredentials
        ? new ProxyError(
            `the proxy ${proxy.display} refused the credentials in ${proxy.source} (${said}); check the user name and password there`,
            'proxy_auth_failed',
            details,
          )
        : new ProxyError(
            `the proxy ${proxy.display} (${proxy.source}) wants credentials (${said}); give them in the URL: http://user:password@host:port`,
            'proxy_auth_required',
            details,
          );
    }
    const target = new URL(this.url).host;
    if (status >= 500 || status === 408 || status === 429) {
      return new ProxyError(
        `the proxy ${proxy.display} could not open a tunnel to ${target} (${said}); is the relay up and reachable from the proxy?`,
        'proxy_refused',
        { ...details, retryable: true },
      );
    }
    return new ProxyError(
      `the proxy ${proxy.display} refused a tunnel to ${target} (${said}); it may not allow CONNECT to that host or port`,
      'proxy_refused',
      details,
    );
  }

  /** One frame from the relay. */
  #onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.#log.warn?.('ignoring a binary frame from the relay');
      return;
    }
    let frame: any;
    try {
      frame = JSON.parse(rawToString(data));
    } catch {
      this.#log.warn?.('ignoring a frame from the relay that is not JSON');
      return;
    }
    this.#onMessage(conn, frame);
  }

  /** One parsed frame, from any transport. */
  #onMessage(conn: Connection, frame: any): void {
    if (conn !== this.#conn) return;
    switch (frame?.type) {
      case 'ready':
        return this.#onReady(conn, frame);
      case 'event': {
        if (!conn.ready) this.#log.warn?.('event frame before ready');
        let event: WebhookEvent;
        try {
          event = WebhookEvent.fromFrame(frame as EventFrame);
        } catch (err) {
          const reason = `malformed event frame: ${errorMessage(err)}`;
          this.#log.error?.(reason);
          // Tell the relay, so the attempt is recorded, when there is an id to name.
          if (typeof frame.id === 'string' && frame.id) this.#send(conn, { type: 'nack', id: frame.id, reason });
          return;
        }
        return this.#dispatch(event, conn);
      }
      case 'error':
        conn.errorFrame = { code: String(frame.code ?? 'error'), message: String(frame.message ?? '') };
        this.#log.debug?.(`relay error frame: ${conn.errorFrame.code}: ${conn.errorFrame.message}`);
        return;
      default:
        // A frame type from a later protocol version: ignore it.
        this.#log.debug?.(`ignoring a frame of type ${JSON.stringify(frame?.type)}`);
    }
  }

  #onReady(conn: Connection, frame: any): void {
    if (conn.ready || conn !== this.#conn) return;
    conn.ready = true;
    conn.readyAt = Date.now();
    if (conn.readyTimer) clearTimeout(conn.readyTimer);
    if (frame.protocol !== undefined && frame.protocol !== 1) {
      this.#log.warn?.(`the relay speaks protocol ${frame.protocol}; this SDK speaks 1`);
    }
    const info: ConnectedInfo = {
      webhookUrl: String(frame.webhook_url),
      agentId: String(frame.agent_id),
      relayId: String(frame.relay_id),
      sessionId: String(frame.session_id),
      maxInFlight: Number(frame.max_in_flight),
      ackTimeoutMs: Number(frame.ack_timeout_ms),
      protocol: Number(frame.protocol ?? 1),
      transport: conn.transport,
      ...(conn.transport !== 'ws' && this.#fallbackReason ? { fallbackReason: this.#fallbackReason } : {}),
    };
    // Reconnects start with the transport that worked.
    this.#start = conn.transport;
    this.#info = info;
    this.#state = 'connected';
    this.#retries = 0;
    const via = conn.transport === 'ws' ? '' : ` via ${conn.transport === 'sse' ? 'SSE' : 'long-poll'}${info.fallbackReason ? ` (${info.fallbackReason})` : ''}`;
    this.#log.info?.(`connected (session ${info.sessionId})${via}; webhook URL ${info.webhookUrl}`);
    const pending = this.#pending;
    this.#pending = null;
    if (pending?.timer) clearTimeout(pending.timer);
    const followers = this.#followers;
    this.#followers = [];
    this.#safeEmit('connected', info);
    pending?.resolve(info);
    for (const follower of followers) follower.resolve(info);
  }

  /** The socket closed: report it, then reconnect or stop. */
  #onClose(conn: Connection, code: number, closeReason: string): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    // Events received but not started are dropped: the relay hands them out again.
    this.#queue = this.#queue.filter((item) => item.conn !== conn);
    const failure = this.#whyClosed(conn, code, closeReason);
    const reason = conn.errorFrame?.message || closeReason || conn.localReason || failure.message;

    if (this.#stopping) {
      if (conn.ready) this.#safeEmit('disconnected', { code, reason: 'closed by the client', willReconnect: false });
      return;
    }

    // transport: 'auto': a refused upgrade (or a buffered stream) moves on to the next transport at once.
    const next = conn.transport === 'ws' ? 'sse' : conn.transport === 'sse' ? 'poll' : null;
    if (!conn.ready && conn.fallback && this.#transportOption === 'auto' && next) {
      const name = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };
      this.#fallbackReason = conn.fallback;
      this.#log.warn?.(`${conn.fallback}; falling back to ${name[next]}`);
      if (this.#pending) this.#pending.lastError = failure;
      this.#safeEmit('fallback', { previous: conn.transport, transport: next, reason: conn.fallback });
      if (!this.#stopping && this.#conn === null) this.#open(next);
      return;
    }

    const pending = this.#pending;
    const fatal =
      failure instanceof AuthenticationError ||
      isProxyAuthFailure(failure) ||
      (pending !== null && failure instanceof ConnectionError && !failure.retryable);
    const willReconnect = this.#reconnect && !fatal;
    if (conn.ready) {
      this.#info = null;
      this.#safeEmit('disconnected', { code, reason, willReconnect, error: failure });
    }
    if (!willReconnect) {
      this.#state = 'closed';
      if (pending) this.#failPending(failure, false);
      else if (fatal) this.#emitError(failure);
      this.#rejectWaiters(failure);
      return;
    }
    if (pending) pending.lastError = failure;
    if (conn.ready) this.#backoff.connectionLasted(Date.now() - conn.readyAt);
    if (code === 1012) this.#backoff.relayRestarting();
    let delayMs = this.#backoff.next();
    if (failure instanceof ConnectionError && failure.retryAfterMs !== undefined) {
      delayMs = Math.max(delayMs, Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS));
    }
    this.#retries++;
    this.#state = pending ? 'connecting' : 'reconnecting';
    const line = `${conn.ready ? 'connection lost' : 'could not connect'}: ${reason}; retrying in ${delayMs} ms`;
    if (conn.ready) this.#log.warn?.(line);
    else this.#log.info?.(line);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#stopping) this.#open();
    }, delayMs);
    this.#safeEmit('reconnecting', { attempt: this.#retries, delayMs, error: failure });
  }

  /** What a close means: an AuthenticationError (stop) or a ConnectionError. */
  #whyClosed(conn: Connection, code: number, closeReason: string): RelayError {
    if (conn.failure && !conn.ready) return conn.failure;
    const frame = conn.errorFrame;
    const said = frame?.message || closeReason;
    const detail = said ? `: ${said}` : '';
    switch (code) {
      case 4001:
        return new AuthenticationError(
          `the relay refused the API key (close code 4001${detail}); check apiKey / LOBSTER_RELAY_API_KEY`,
          frame?.code ?? 'unauthorized',
          { closeCode: code },
        );
      case 4003:
        return new AuthenticationError(
          `this agent was revoked (close code 4003${detail}); ask the relay admin for a new agent and key`,
          frame?.code ?? 'agent_revoked',
          { closeCode: code },
        );
      case 1012:
        return new ConnectionError(`the relay is restarting${detail}`, 'relay_restarting', { closeCode: code });
      case 4008:
        return new ConnectionError(`the relay reported a protocol violation (close code 4008${detail})`, frame?.code ?? 'protocol_violation', {
          closeCode: code,
        });
      default:
        if (conn.localReason) return new ConnectionError(conn.localReason, 'connection_dropped', { closeCode: code });
        if (conn.failure) return conn.failure;
        return new ConnectionError(
          code === 1006 ? 'the connection to the relay was lost' : `the relay closed the connection (code ${code}${detail})`,
          frame?.code ?? 'connection_lost',
          { closeCode: code },
        );
    }
  }

  /** Rejects the pending `connect()` and stops trying. */
  #failPending(error: RelayError, stopSocket = true): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = null;
    if (pending.timer) clearTimeout(pending.timer);
    if (stopSocket) {
      this.#clearReconnect();
      const conn = this.#conn;
      if (conn && !conn.ready) {
        this.#conn = null;
        conn.link.terminate();
      }
      this.#state = 'closed';
      this.#rejectWaiters(error);
    }
    pending.reject(error);
  }

  #clearReconnect(): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
  }

  // ---- events -----------------------------------------------------------

  /** An event arrived: skip it if already handled, else queue it for a handler slot. */
  #dispatch(event: WebhookEvent, conn: Connection): void {
    if (this.#stopping || conn !== this.#conn) return; // not acked: the relay hands it out again
    if (!event.replay) {
      if (this.#handled.has(event.id)) {
        this.#log.debug?.(`event ${event.id} (attempt ${event.attempt}) was already handled here; acking it again`);
        this.#send(conn, { type: 'ack', id: event.id });
        return;
      }
      const running = this.#inflight.get(event.id);
      if (running) {
        // A redelivery while the first run is still going (its session dropped):
        // that run's outcome decides.
        void running.then((ok) => {
          if (conn !== this.#conn || this.#stopping) return;
          if (ok) this.#send(conn, { type: 'ack', id: event.id });
          else this.#enqueue(event, conn);
        });
        return;
      }
    }
    this.#enqueue(event, conn);
  }

  #enqueue(event: WebhookEvent, conn: Connection): void {
    this.#queue.push({ event, conn });
    this.#pump();
  }

  /** Starts queued events while handler slots are free, in arrival order. */
  #pump(): void {
    while (this.#running < this.maxConcurrency && this.#queue.length > 0) {
      const item = this.#queue.shift()!;
      if (item.conn !== this.#conn) continue;
      this.#running++;
      const run = this.#handle(item.event, item.conn);
      this.#inflight.set(item.event.id, run);
      void run.finally(() => {
        this.#running--;
        if (this.#inflight.get(item.event.id) === run) this.#inflight.delete(item.event.id);
        this.#pump();
        if (this.#running === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const wake of waiters) wake();
        }
      });
    }
  }

  /**
   * Runs every `webhook` listener on the event, then acks (all resolved) or
   * nacks (one threw or rejected). Resolves with whether it was handled.
   */
  async #handle(event: WebhookEvent, conn: Connection): Promise<boolean> {
    const listeners = this.rawListeners('webhook') as Array<(event: WebhookEvent) => unknown>;
    const waiters = [...this.#waiters].filter((waiter) => matchesAny(waiter.patterns, event.type));
    if (listeners.length === 0 && waiters.length === 0) {
      const reason = "no 'webhook' listener in this process";
      this.#log.warn?.(`event ${event.id} (${event.type}): ${reason}; nacked, the relay will retry it`);
      this.#send(conn, { type: 'nack', id: event.id, reason });
      return false;
    }
    const outcomes = await Promise.allSettled(listeners.map((listener) => callListener(listener, this, event)));
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed) {
      const reason = errorMessage(failed.reason).slice(0, MAX_REASON) || 'handler failed';
      this.#send(conn, { type: 'nack', id: event.id, reason });
      this.#emitError(
        new HandlerError(
          `webhook handler failed for ${event.id} (${event.type}, attempt ${event.attempt}): ${reason}; nacked, the relay will retry it`,
          event.id,
          event.attempt,
          failed.reason,
        ),
      );
      return false;
    }
    this.#handled.add(event.id);
    if (!this.#send(conn, { type: 'ack', id: event.id })) {
      this.#log.debug?.(`event ${event.id} handled, but its connection is gone: the relay will redeliver it and it will be acked then`);
    }
    for (const waiter of waiters) waiter.resolve(event);
    return true;
  }

  /** Sends a frame on `conn` if it is still open; the ack of a dropped session is lost (the relay redelivers). */
  #send(conn: Connection, frame: { type: 'ack'; id: string } | { type: 'nack'; id: string; reason: string }): boolean {
    if (!conn.link.isOpen()) return false;
    conn.link.answer(frame);
    return true;
  }

  /** Resolves when no handler is running (or after `timeoutMs`). */
  #whenIdle(timeoutMs?: number): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.#idleWaiters.push(wake);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#idleWaiters = this.#idleWaiters.filter((w) => w !== wake);
          this.#log.warn?.(`close(): ${this.#running} handler(s) still running after ${timeoutMs} ms; closing anyway`);
          resolve();
        }, timeoutMs);
      }
    });
  }

  /** Rejects pending `wait()` calls and `connect()` calls made while reconnecting. */
  #rejectWaiters(error: Error): void {
    for (const waiter of [...this.#waiters]) waiter.reject(error);
    const followers = this.#followers;
    this.#followers = [];
    for (const follower of followers) follower.reject(error);
  }

  /** Emits `error` when someone listens (an unheard `error` would crash the process), else logs it. */
  #emitError(error: RelayError): void {
    if (this.listenerCount('error') > 0) this.#safeEmit('error', error);
    else this.#log.error?.(error.message);
  }

  /** Emits an event; a listener that throws is logged instead of breaking the connection's bookkeeping. */
  #safeEmit(name: 'connected' | 'disconnected' | 'reconnecting' | 'error' | 'fallback', arg: unknown): void {
    try {
      this.emit(name, arg as never);
    } catch (err) {
      this.#log.error?.(`a '${name}' listener threw: ${errorMessage(err)}`);
    }
  }
}

/** An error of the connection itself during the upgrade (not a refused connect, a DNS failure or a TLS refusal). */
function cutDuringUpgrade(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (isUnreachable(err)) return false;
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|HOSTNAME/i.test(code) || /certificate/i.test(err.message)) return false;
  return true;
}

/** A connection that never started: nothing answers there. */
function isUnreachable(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'].includes(code);
}

/** The proxy refused the credentials: retrying cannot help. */
function isProxyAuthFailure(error: RelayError): boolean {
  return error instanceof ProxyError && (error.code === 'proxy_auth_failed' || error.code === 'proxy_auth_required');
}

function callListener(listener: (event: WebhookEvent) => unknown, self: WebhookRelay, event: WebhookEvent): Promise<unknown> {
  try {
    return Promise.resolve(listener.call(self, event));
  } catch (err) {
    return Promise.reject(err);
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

function rawToString(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  const seconds = Number(text.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function positive(value: number, name: string, allowZeroOrMore = false): number {
  // Timers take at most 2^31 - 1 ms (about 24.8 days).
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 2_147_483_647 || (!allowZeroOrMore && value === 0)) {
    throw new ConfigurationError(`${name} must be a positive number (at most 2147483647) (got ${String(value)})`, 'invalid_option');
  }
  return value;
}
