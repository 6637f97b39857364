/**
 * Error classes. Every error the SDK raises is a {@link RelayError} with a
 * stable, snake_case `code` (the relay's own error code where the relay gave
 * one), so callers can branch on `err.code` or on the class.
 *
 * The package ships an ES module build and a CommonJS build; an error thrown
 * by one build is not `instanceof` the other build's class. Checking
 * `err.name` or `err.code` works with both.
 */

/** Base class of every error raised by this package. */
export class RelayError extends Error {
  /** A stable snake_case code, e.g. `unauthorized`, `timeout`. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option given to `new WebhookRelay(...)` (or a method) is invalid. */
export class ConfigurationError extends RelayError {}

/**
 * The relay refused the API key: HTTP 401/403 on the WebSocket upgrade,
 * close code 4001 (unauthorized) or 4003 (agent revoked). The SDK never
 * retries after this error; fix the key and connect again.
 */
export class AuthenticationError extends RelayError {
  /** HTTP status of the refused upgrade, when it was refused there. */
  readonly status?: number;
  /** WebSocket close code (4001 or 4003), when the session was closed. */
  readonly closeCode?: number;

  constructor(
    message: string,
    code: string,
    details: { status?: number; closeCode?: number; cause?: unknown } = {},
  ) {
    super(message, code, { cause: details.cause });
    this.status = details.status;
    this.closeCode = details.closeCode;
  }
}

/**
 * The relay could not be reached, refused the connection for another reason
 * than the key, or dropped it. `connect()` rejects with it once its
 * `connectTimeoutMs` is over (or at once for errors that a retry cannot fix,
 * e.g. HTTP 404 because the URL does not point at a relay).
 */
export class ConnectionError extends RelayError {
  /** HTTP status of a refused upgrade, if any. */
  readonly status?: number;
  /** WebSocket close code, if the connection was closed with one. */
  readonly closeCode?: number;
  /** Delay the relay asked for (`Retry-After`), in milliseconds. */
  readonly retryAfterMs?: number;
  /** True when trying again later may work. */
  readonly retryable: boolean;

  constructor(
    message: string,
    code: string,
    details: {
      status?: number;
      closeCode?: number;
      retryAfterMs?: number;
      retryable?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, code, { cause: details.cause });
    this.status = details.status;
    this.closeCode = details.closeCode;
    this.retryAfterMs = details.retryAfterMs;
    this.retryable = details.retryable ?? true;
  }
}

/**
 * The HTTP proxy on the way to the relay failed: it could not be reached
 * (`proxy_unreachable`, retried like an unreachable relay), refused the
 * credentials (`proxy_auth_required` for HTTP 407 without credentials,
 * `proxy_auth_failed` with them: never retried), or refused the tunnel
 * (`proxy_refused`, e.g. 403 for a port it does not allow; 5xx answers,
 * such as a relay the proxy cannot reach, are retried). `proxy` names it
 * without credentials.
 */
export class ProxyError extends ConnectionError {
  /** The proxy, as `scheme://host:port` (never with credentials). */
  readonly proxy: string;

  constructor(
    message: string,
    code: string,
    details: { proxy: string; status?: number; retryable?: boolean; cause?: unknown },
  ) {
    super(message, code, { status: details.status, retryable: details.retryable, cause: details.cause });
    this.proxy = details.proxy;
  }
}

/** `wait()` (or another operation with a deadline) ran out of time. */
export class TimeoutError extends RelayError {
  constructor(message: string) {
    super(message, 'timeout');
  }
}

/** The operation was cut short because `close()` was called. */
export class ClosedError extends RelayError {
  constructor(message = 'the relay client was closed') {
    super(message, 'closed');
  }
}

/**
 * A `webhook` listener threw or rejected. The event was nacked with the
 * error's message as reason, so the relay retries it by its policy. Emitted
 * on the `error` event; `cause` is what the listener threw.
 */
export class HandlerError extends RelayError {
  /** The id of the event whose handler failed. */
  readonly eventId: string;
  /** The delivery attempt that failed (1 for the first). */
  readonly attempt: number;

  constructor(message: string, eventId: string, attempt: number, cause: unknown) {
    super(message, 'handler_failed', { cause });
    this.eventId = eventId;
    this.attempt = attempt;
  }
}

/** A webhook signature did not verify (see `assertSignature`). */
export class SignatureError extends RelayError {}
