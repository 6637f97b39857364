/**
 * Verifying a webhook sender's signature yourself, on the headers and raw
 * body the relay delivered (end-to-end: you need not trust the relay).
 *
 * Schemes (interface section 3):
 * - `standard-webhooks` (default): `webhook-id`, `webhook-timestamp`,
 *   `webhook-signature: v1,<base64> [v1,<base64> ...]`, HMAC-SHA256 over
 *   `{id}.{timestamp}.{body}` keyed with the base64-decoded part of a
 *   `whsec_...` secret (a secret without the prefix is used as raw bytes).
 * - `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
 * - `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>` over `{t}.{body}`.
 *
 * Comparisons are constant-time; an empty or truncated signature never passes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import { SignatureError } from './errors.js';
import { WebhookHeaders } from './event.js';

export type SignatureScheme = 'standard-webhooks' | 'github' | 'stripe';

/** Anything that holds headers: the event's, `fetch` `Headers`, Node's `req.headers`, or pairs. */
export type HeadersLike =
  | WebhookHeaders
  | { get(name: string): string | null | undefined }
  | Record<string, string | string[] | undefined>
  | Iterable<readonly [string, string]>;

/** What gets verified: a `WebhookEvent`, or headers and body from elsewhere. */
export interface SignedMessage {
  headers: HeadersLike;
  /** The raw body, exactly as sent. A string is taken as UTF-8. */
  body: Uint8Array | string;
  /** When the relay received it (set on a `WebhookEvent`); see `toleranceSeconds`. */
  receivedAt?: Date;
}

export interface VerifyOptions {
  /** Signature scheme; default `standard-webhooks`. */
  scheme?: SignatureScheme;
  /**
   * Largest gap allowed between the signature's timestamp and the reference
   * time, in seconds; default 300. `null` (or `Infinity`) skips the check.
   * GitHub signatures carry no timestamp.
   */
  toleranceSeconds?: number | null;
  /**
   * The reference time. Default: the message's `receivedAt` when it has one
   * (a `WebhookEvent`: events may sit in the relay's queue for hours, but the
   * sender signed them shortly before the relay received them), else now.
   */
  now?: Date | number;
}

const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * Throws a {@link SignatureError} (code `missing_signature`,
 * `invalid_signature` or `timestamp_out_of_tolerance`) unless the message
 * carries a valid signature made with `secret` (or with one of `secret`s,
 * during a rotation).
 */
export function assertSignature(
  message: SignedMessage,
  secret: string | readonly string[],
  options: VerifyOptions = {},
): void {
  const secrets = (typeof secret === 'string' ? [secret] : [...secret]).filter((s) => s !== '');
  if (secrets.length === 0) throw new TypeError('verifySignature: no secret given');
  const scheme = options.scheme ?? 'standard-webhooks';
  const headers = toHeaderGetter(message.headers);
  const body = typeof message.body === 'string' ? Buffer.from(message.body, 'utf8') : Buffer.from(message.body);
  const reference =
    options.now !== undefined
      ? toUnixSeconds(options.now)
      : message.receivedAt instanceof Date && !Number.isNaN(message.receivedAt.getTime())
        ? toUnixSeconds(message.receivedAt)
        : Date.now() / 1000;
  const tolerance =
    options.toleranceSeconds === undefined ? DEFAULT_TOLERANCE_SECONDS : options.toleranceSeconds;

  switch (scheme) {
    case 'standard-webhooks':
      return assertStandardWebhooks(headers, body, secrets, reference, tolerance);
    case 'github':
      return assertGithub(headers, body, secrets);
    case 'stripe':
      return assertStripe(headers, body, secrets, reference, tolerance);
    default:
      throw new TypeError(`verifySignature: unknown scheme ${JSON.stringify(scheme)}`);
  }
}

/**
 * True when the message carries a valid signature made with `secret` (see
 * {@link assertSignature}, which says why one does not verify).
 *
 * ```js
 * relay.on('webhook', (event) => {
 *   if (!verifySignature(event, process.env.WEBHOOK_SECRET)) return; // drop forgeries
 * });
 * ```
 */
export function verifySignature(
  message: SignedMessage,
  secret: string | readonly string[],
  options: VerifyOptions = {},
): boolean {
  try {
    assertSignature(message, secret, options);
    return true;
  } catch (err) {
    if (err instanceof SignatureError) return false;
    throw err;
  }
}

/**
 * The `webhook-signature` value (`v1,<base64>`) for a Standard Webhooks
 * message: what a sender puts on the request. Handy for tests.
 */
export function signStandardWebhook(
  secret: string,
  id: string,
  timestamp: number | Date,
  body: Uint8Array | string,
): string {
  const ts = Math.floor(toUnixSeconds(timestamp));
  const mac = createHmac('sha256', standardWebhooksKey(secret))
    .update(`${id}.${ts}.`)
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest('base64');
  return `v1,${mac}`;
}

/** The HMAC key of a Standard Webhooks secret: base64 after `whsec_`, else the raw bytes. */
function standardWebhooksKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

function assertStandardWebhooks(
  headers: HeaderGetter,
  body: Buffer,
  secrets: string[],
  reference: number,
  tolerance: number | null,
): void {
  const id = headers('webhook-id');
  const timestamp = headers('webhook-timestamp');
  const signature = headers('webhook-signature');
  if (!id || !timestamp || !signature) {
    throw new SignatureError(
      'missing webhook-id, webhook-timestamp or webhook-signature header',
      'missing_signature',
    );
  }
  if (!/^\d{1,15}$/.test(timestamp.trim())) {
    throw new SignatureError('webhook-timestamp is not unix seconds', 'invalid_signature');
  }
  const ts = Number(timestamp.trim());
  checkTolerance(ts, reference, tolerance);
  // Any `v1,<base64>` entry may match; other versions are skipped.
  const candidates: Buffer[] = [];
  for (const entry of signature.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const decoded = decodeBase64Strict(entry.slice(comma + 1));
    if (decoded) candidates.push(decoded);
  }
  for (const secret of secrets) {
    const expected = createHmac('sha256', standardWebhooksKey(secret))
      .update(`${id}.${timestamp.trim()}.`)
      .update(body)
      .digest();
    if (candidates.some((candidate) => constantTimeEqual(candidate, expected))) return;
  }
  throw new SignatureError('no webhook-signature entry matches the body and secret', 'invalid_signature');
}

function assertGithub(headers: HeaderGetter, body: Buffer, secrets: string[]): void {
  const header = headers('x-hub-signature-256');
  if (!header) throw new SignatureError('missing X-Hub-Signature-256 header', 'missing_signature');
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) throw new SignatureError('X-Hub-Signature-256 is not sha256=<64 hex digits>', 'invalid_signature');
  const given = Buffer.from(match[1], 'hex');
  for (const secret of secrets) {
    const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest();
    if (constantTimeEqual(given, expected)) return;
  }
  throw new SignatureError('X-Hub-Signature-256 does not match the body and secret', 'invalid_signature');
}

function assertStripe(
  headers: HeaderGetter,
  body: Buffer,
  secrets: string[],
  reference: number,
  tolerance: number | null,
): void {
  const header = headers('stripe-signature');
  if (!header) throw new SignatureError('missing Stripe-Signature header', 'missing_signature');
  let timestamp: string | undefined;
  const candidates: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') timestamp = value;
    else if (key === 'v1' && /^[0-9a-fA-F]{64}$/.test(value)) candidates.push(Buffer.from(value, 'hex'));
  }
  if (!timestamp || !/^\d{1,15}$/.test(timestamp) || candidates.length === 0) {
    throw new SignatureError('Stripe-Signature needs t=<unix> and v1=<hex>', 'invalid_signature');
  }
  checkTolerance(Number(timestamp), reference, tolerance);
  for (const secret of secrets) {
    const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${timestamp}.`).update(body).digest();
    if (candidates.some((candidate) => constantTimeEqual(candidate, expected))) return;
  }
  throw new SignatureError('Stripe-Signature does not match the body and secret', 'invalid_signature');
}

function checkTolerance(timestamp: number, reference: number, tolerance: number | null): void {
  if (tolerance === null || !Number.isFinite(tolerance)) return;
  if (Math.abs(reference - timestamp) > tolerance) {
    throw new SignatureError(
      `the signature's timestamp is more than ${tolerance} s away from the reference time`,
      'timestamp_out_of_tolerance',
    );
  }
}

/** Equal lengths and equal bytes, in time independent of where they differ. */
function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

/** Standard base64 with padding; `null` for anything else (so junk never matches). */
function decodeBase64Strict(text: string): Buffer | null {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  return Buffer.from(text, 'base64');
}

function toUnixSeconds(time: Date | number): number {
  return time instanceof Date ? time.getTime() / 1000 : time;
}

type HeaderGetter = (name: string) => string | undefined;

/** One lookup function over any of the header shapes in {@link HeadersLike}. */
function toHeaderGetter(headers: HeadersLike): HeaderGetter {
  if (headers instanceof WebhookHeaders) return (name) => headers.get(name);
  if (headers && typeof (headers as { get?: unknown }).get === 'function') {
    const h = headers as { get(name: string): string | null | undefined };
    return (name) => h.get(name) ?? undefined;
  }
  if (headers && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const parsed = new WebhookHeaders(headers as Iterable<readonly [string, string]>);
    return (name) => parsed.get(name);
  }
  const lower = new Map<string, string>();
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    lower.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : String(value));
  }
  return (name) => lower.get(name.toLowerCase());
}
