/**
 * `@powerlobster/webhook`: receive webhooks inside a Node.js agent through a
 * lobster-relay.
 *
 * ```js
 * import { WebhookRelay } from '@powerlobster/webhook';
 * const relay = new WebhookRelay({ relayUrl: 'wss://relay.example.com', apiKey: process.env.POWERLOBSTER_API_KEY });
 * relay.on('webhook', async (event) => console.log(event.type, event.payload));
 * await relay.connect();
 * ```
 */
export { WebhookRelay } from './relay.js';
export type {
  CloseOptions,
  ConnectedInfo,
  DisconnectedInfo,
  FallbackInfo,
  Logger,
  ReconnectOptions,
  ReconnectingInfo,
  RelayState,
  TransportName,
  TransportOption,
  WaitOptions,
  WebSocketOptions,
  WebhookRelayEvents,
  WebhookRelayOptions,
} from './relay.js';
export { WebhookEvent, WebhookHeaders } from './event.js';
export type { EventFrame, HeaderPair } from './event.js';
export { assertSignature, signStandardWebhook, verifySignature } from './signature.js';
export type { HeadersLike, SignatureScheme, SignedMessage, VerifyOptions } from './signature.js';
export {
  AuthenticationError,
  ClosedError,
  ConfigurationError,
  ConnectionError,
  HandlerError,
  ProxyError,
  RelayError,
  SignatureError,
  TimeoutError,
} from './errors.js';
export { VERSION } from './version.js';
