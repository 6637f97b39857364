//! Proxies between the CLI and the relay: `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY` (and their lower-case forms), for the WebSocket
//! as for the HTTP API.
//!
//! - `choose`: which proxy a relay URL goes through, by reqwest's rules,
//!   so the API calls (reqwest) and the WebSocket never disagree.
//! - `tunnel`: the HTTP CONNECT handshake, with basic proxy
//!   authentication, that carries the WebSocket (and its TLS) to the relay.
//!
//! Local forwarding (`listen --forward`) never goes through a proxy.

mod choose;
mod tunnel;

pub use choose::{Proxy, ProxyEnv, env};
pub use tunnel::{TunnelError, handshake, open};
