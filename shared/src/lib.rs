//! What both ends of lobster-relay must agree on, with no sockets in sight.
//!
//! Layout:
//! - [`wire`]: the WebSocket protocol (v1), one message enum per direction.
//! - [`api`]: the bodies of the HTTP API.
//! - [`signature`]: signing and verifying webhooks (Standard Webhooks, GitHub,
//!   Stripe), constant-time.
//! - [`ids`]: event, agent and relay ids, and API keys with a checksum.
//! - [`secret`]: a string that never prints itself.
//! - [`backoff`]: how an agent spaces its reconnect attempts.
//! - [`errors`]: an error and its causes as one line.

pub mod api;
pub mod backoff;
pub mod errors;
pub mod ids;
pub mod secret;
pub mod signature;
pub mod wire;

pub use errors::error_chain;
pub use secret::Secret;
