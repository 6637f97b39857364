/**
 * The event handed to `webhook` listeners, built from the relay's `event`
 * frame (interface section 6).
 */

/** One header as the sender sent it: `[name, value]`. */
export type HeaderPair = readonly [name: string, value: string];

/**
 * The webhook's request headers. Lookups ignore case; the original pairs are
 * kept in order (repeated headers included) in {@link WebhookHeaders.raw}.
 */
export class WebhookHeaders implements Iterable<[string, string]> {
  /** The headers exactly as the relay stored them, in order. */
  readonly raw: readonly HeaderPair[];
  readonly #byName = new Map<string, string[]>();

  constructor(pairs: Iterable<readonly [string, string]> = []) {
    const raw: HeaderPair[] = [];
    for (const [name, value] of pairs) {
      const pair: HeaderPair = [String(name), String(value)];
      raw.push(Object.freeze(pair) as HeaderPair);
      const key = pair[0].toLowerCase();
      const values = this.#byName.get(key);
      if (values) values.push(pair[1]);
      else this.#byName.set(key, [pair[1]]);
    }
    this.raw = Object.freeze(raw);
  }

  /**
   * The value of header `name` (any case), or `undefined`. A header sent
   * more than once gives its values joined with `", "`, as `fetch`'s
   * `Headers.get` does; {@link WebhookHeaders.getAll} gives them apart.
   */
  get(name: string): string | undefined {
    return this.#byName.get(name.toLowerCase())?.join(', ');
  }

  /** Every value of header `name` (any case), in order; `[]` when absent. */
  getAll(name: string): string[] {
    return [...(this.#byName.get(name.toLowerCase()) ?? [])];
  }

  /** True when header `name` (any case) was sent. */
  has(name: string): boolean {
    return this.#byName.has(name.toLowerCase());
  }

  /** Number of header lines (a repeated header counts each time). */
  get size(): number {
    return this.raw.length;
  }

  /** `[name, value]` pairs as sent, in order. */
  *entries(): IterableIterator<[string, string]> {
    for (const [name, value] of this.raw) yield [name, value];
  }

  /** Header names as sent, in order (repeats included). */
  *keys(): IterableIterator<string> {
    for (const [name] of this.raw) yield name;
  }

  /** Header values, in order. */
  *values(): IterableIterator<string> {
    for (const [, value] of this.raw) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  forEach(callback: (value: string, name: string, headers: this) => void): void {
    for (const [name, value] of this.raw) callback(value, name, this);
  }

  /** A plain object: lower-case names to values (repeats joined with `", "`). */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, values] of this.#byName) out[name] = values.join(', ');
    return out;
  }

  toJSON(): HeaderPair[] {
    return [...this.raw];
  }
}

/** The `event` frame as the relay sends it. */
export interface EventFrame {
  type: 'event';
  id: string;
  event_type: string;
  received_at: string;
  attempt: number;
  headers: Array<[string, string]>;
  body: string;
  body_encoding: 'utf8' | 'base64';
  replay?: boolean;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body parsed as JSON, or `null` when it is not UTF-8 JSON. */
function parseJson(body: Buffer): unknown {
  if (body.length === 0) return null;
  try {
    return JSON.parse(strictUtf8.decode(body));
  } catch {
    return null;
  }
}

/** One webhook delivered by the relay. */
export class WebhookEvent {
  /** The event id (`evt_...`), the one the relay's `202` answered with. Stable across redeliveries. */
  readonly id: string;
  /** The event type, e.g. `message.received` (`unknown` when the relay found none). */
  readonly type: string;
  /** Delivery attempt, 1 for the first; higher on redeliveries. */
  readonly attempt: number;
  /** When the relay accepted the webhook. */
  readonly receivedAt: Date;
  /** The webhook's request headers (case-insensitive lookup). */
  readonly headers: WebhookHeaders;
  /** The request body, byte for byte. */
  readonly body: Buffer;
  /** The body parsed as JSON, or `null` when it is not JSON. */
  readonly payload: any;
  /** True when this delivery comes from an explicit replay (`events replay`, the replay endpoint). */
  readonly replay: boolean;

  constructor(init: {
    id: string;
    type: string;
    attempt: number;
    receivedAt: Date;
    headers: WebhookHeaders;
    body: Buffer;
    replay?: boolean;
  }) {
    this.id = init.id;
    this.type = init.type;
    this.attempt = init.attempt;
    this.receivedAt = init.receivedAt;
    this.headers = init.headers;
    this.body = init.body;
    this.payload = parseJson(init.body);
    this.replay = init.replay === true;
  }

  /** Builds the event from a relay `event` frame. Throws on a malformed frame. */
  static fromFrame(frame: EventFrame): WebhookEvent {
    if (typeof frame.id !== 'string' || frame.id === '') throw new TypeError('event frame without an id');
    if (typeof frame.body !== 'string') throw new TypeError(`event ${frame.id}: body is not a string`);
    let body: Buffer;
    if (frame.body_encoding === 'base64') body = Buffer.from(frame.body, 'base64');
    else if (frame.body_encoding === 'utf8' || frame.body_encoding === undefined) body = Buffer.from(frame.body, 'utf8');
    else throw new TypeError(`event ${frame.id}: unknown body_encoding ${JSON.stringify(frame.body_encoding)}`);
    const headers = Array.isArray(frame.headers)
      ? frame.headers.filter((h): h is [string, string] => Array.isArray(h) && h.length === 2)
      : [];
    return new WebhookEvent({
      id: frame.id,
      type: typeof frame.event_type === 'string' ? frame.event_type : 'unknown',
      attempt: Number.isInteger(frame.attempt) ? frame.attempt : 1,
      receivedAt: new Date(frame.received_at),
      headers: new WebhookHeaders(headers),
      body,
      replay: frame.replay === true,
    });
  }

  /** Alias of {@link WebhookEvent.body}: the raw bytes, e.g. for signature checks. */
  get rawBody(): Buffer {
    return this.body;
  }

  /** The body decoded as UTF-8 text (invalid bytes become U+FFFD). */
  text(): string {
    return this.body.toString('utf8');
  }

  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      type: this.type,
      attempt: this.attempt,
      receivedAt: this.receivedAt.toISOString(),
      replay: this.replay,
      headers: this.headers.toJSON(),
      payload: this.payload,
      body: this.body.toString('base64'),
    };
  }
}
