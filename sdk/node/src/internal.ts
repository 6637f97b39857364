/**
 * Small building blocks of the client: the connect URL, event-type globs,
 * the reconnect backoff and the memory of handled event ids. Internal: not
 * exported from the package (their behaviour is documented on WebhookRelay).
 */
import { ConfigurationError } from './errors.js';

/** The hosted relay, used when neither `relayUrl` nor `LOBSTER_RELAY_URL` is set. */
export const DEFAULT_RELAY_URL = 'https://relay.powerlobster.com';

const CONNECT_PATH = '/api/v1/agent/connect';

/**
 * `{base}/api/v1/agent/connect[?events=...]` as a `ws:`/`wss:` URL: `http`
 * becomes `ws`, `https` becomes `wss`, and a path prefix of the base URL is
 * kept (`https://example.com/relay` → `wss://example.com/relay/api/v1/agent/connect`).
 * A URL that already ends in the connect path is taken as is.
 */
export function connectUrl(relayUrl: string, events?: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(relayUrl);
  } catch {
    throw new ConfigurationError(
      `relayUrl ${JSON.stringify(relayUrl)} is not a URL; use e.g. https://relay.example.com`,
      'invalid_relay_url',
    );
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (!scheme) {
    throw new ConfigurationError(
      `relayUrl must start with https://, http://, wss:// or ws:// (got ${url.protocol}//)`,
      'invalid_relay_url',
    );
  }
  if (url.username || url.password) {
    throw new ConfigurationError('relayUrl must not contain credentials; pass apiKey instead', 'invalid_relay_url');
  }
  const base = url.pathname.replace(/\/+$/, '');
  const path = base.endsWith(CONNECT_PATH) ? base : base + CONNECT_PATH;
  // Commas and stars stay literal, as the contract writes the query
  // (`?events=message.*,ping`); only what a query parser would misread is escaped.
  const query = new URLSearchParams(url.search);
  query.delete('events');
  let search = query.toString();
  if (events && events.length > 0) {
    const value = events.join(',').replace(/[%&+=# ]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
    search = search ? `${search}&events=${value}` : `events=${value}`;
  }
  return `${scheme}//${url.host}${path}${search ? `?${search}` : ''}`;
}

/** Splits `"a.*, b"` or `["a.*", "b"]` into patterns; blank entries dropped. */
export function parsePatterns(events: string | readonly string[] | undefined, what = 'events'): string[] | undefined {
  if (events === undefined || events === null) return undefined;
  const list = typeof events === 'string' ? [events] : events;
  if (!Array.isArray(list)) throw new ConfigurationError(`${what} must be a string or an array of strings`, 'invalid_events');
  const patterns: string[] = [];
  for (const item of list) {
    if (typeof item !== 'string') throw new ConfigurationError(`${what} must be a string or an array of strings`, 'invalid_events');
    for (const part of item.split(',')) {
      const pattern = part.trim();
      if (pattern) patterns.push(pattern);
    }
  }
  if (patterns.length === 0) {
    throw new ConfigurationError(`${what} is empty; leave it out to receive every event type`, 'invalid_events');
  }
  return patterns;
}

/**
 * True when `text` matches glob `pattern`: `*` is any run of characters
 * (dots included), `?` one character, anything else itself. The language
 * the relay applies to `?events=`.
 */
export function globMatch(pattern: string, text: string): boolean {
  const p = [...pattern];
  const t = [...text];
  let pi = 0;
  let ti = 0;
  let star = -1;
  let starT = 0;
  while (ti < t.length) {
    if (p[pi] === '*') {
      star = pi++;
      starT = ti;
    } else if (p[pi] === '?' || (pi < p.length && p[pi] === t[ti])) {
      pi++;
      ti++;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

export function matchesAny(patterns: readonly string[] | undefined, type: string): boolean {
  return !patterns || patterns.some((pattern) => globMatch(pattern, type));
}

/** Reconnect delays, as the CLI's `listen` (shared/src/backoff.rs). */
export interface BackoffLimits {
  /** Ceiling of the first retry's delay (ms). */
  initialDelayMs: number;
  /** Ceiling of every delay (ms). */
  maxDelayMs: number;
  /** A connection that stayed up this long after `ready` resets the backoff (ms). */
  stableAfterMs: number;
}

/** Ceiling of each retry's delay after the relay said it is restarting (close 1012). */
const RESTART_STEP_MS = 500;
/** Retries at RESTART_STEP_MS after a 1012: about five seconds of them, then the usual backoff. */
const RESTART_TRIES = 20;
/**
 * Retries within the first ceiling (`initialDelayMs`) after a stable
 * connection dropped without a 1012: about a second and a half of them, then
 * the doubling.
 */
const DROP_TRIES = 12;

/**
 * Exponential backoff with full jitter: the n-th retry (from 0) waits a
 * uniformly random time in `[0, min(max, initial * 2^n))`. Some retries are
 * "flat": each waits within a fixed step and does not grow the backoff. After
 * a 1012 close the next 20 wait under 500 ms; after a stable connection
 * (`stableAfterMs`) dropped without one, the backoff starts over and the next
 * 12 wait under `initialDelayMs`, then the doubling from `initialDelayMs`
 * resumes. A 1012 on that drop takes precedence.
 */
export class Backoff {
  #retries = 0;
  /** Retries left that wait within #flatStepMs and do not grow the backoff. */
  #flatTries = 0;
  #flatStepMs = 0;

  constructor(
    private readonly limits: BackoffLimits,
    private readonly random: () => number = Math.random,
  ) {}

  /** The ceiling of the next delay. */
  ceiling(): number {
    if (this.#flatTries > 0) return Math.min(this.#flatStepMs, this.limits.maxDelayMs);
    return Math.min(this.limits.maxDelayMs, this.limits.initialDelayMs * 2 ** Math.min(this.#retries, 30));
  }

  /** The next delay in ms, and counts it. */
  next(): number {
    const delay = Math.floor(this.ceiling() * Math.min(Math.max(this.random(), 0), 0.999999));
    if (this.#flatTries > 0) this.#flatTries--;
    else this.#retries++;
    return delay;
  }

  /** The relay closed the session saying it is restarting: retry quickly for a while. */
  relayRestarting(): void {
    this.#flatTries = RESTART_TRIES;
    this.#flatStepMs = RESTART_STEP_MS;
  }

  /**
   * A session stayed up `upForMs` after `ready`, then dropped: long enough,
   * and the backoff starts over with DROP_TRIES quick retries.
   */
  connectionLasted(upForMs: number): void {
    if (upForMs >= this.limits.stableAfterMs) {
      this.reset();
      this.#flatTries = DROP_TRIES;
      this.#flatStepMs = this.limits.initialDelayMs;
    }
  }

  reset(): void {
    this.#retries = 0;
    this.#flatTries = 0;
  }
}

/**
 * Ids of events handled successfully in this process, each remembered for
 * `ttlMs` (bounded by `maxSize`, oldest forgotten first), so that a
 * redelivery (an ack lost with a dropped connection) is acked without
 * running the handler again.
 */
export class HandledIds {
  readonly #seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxSize: number,
    private readonly now: () => number = Date.now,
  ) {}

  add(id: string): void {
    this.#seen.delete(id);
    this.#seen.set(id, this.now());
    this.#prune();
  }

  has(id: string): boolean {
    const at = this.#seen.get(id);
    if (at === undefined) return false;
    if (this.now() - at > this.ttlMs) {
      this.#seen.delete(id);
      return false;
    }
    return true;
  }

  get size(): number {
    return this.#seen.size;
  }

  #prune(): void {
    const oldest = this.now() - this.ttlMs;
    // Insertion order is age order: drop from the front.
    for (const [id, at] of this.#seen) {
      if (this.#seen.size > this.maxSize || at < oldest) this.#seen.delete(id);
      else break;
    }
  }
}
