//! The HTTP API: agent, admin and webhook endpoints, and the JSON error
//! edge. The routes are in [`crate::routes`], the shared state in
//! [`crate::state`].

pub(crate) mod admin;
pub(crate) mod agent;
pub(crate) mod auth;
pub mod backlog;
pub(crate) mod callbacks;
pub(crate) mod edge;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod limits;
pub mod replay;
pub(crate) mod webhook;
pub mod workspaces;

pub use auth::AuthedAgent;
pub use edge::ClientIp;
pub use error::ApiError;
pub use limits::Limits;

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: crate::store::Millis) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
