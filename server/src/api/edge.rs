//! What every request passes at the edge: the client IP extractor and the
//! request deadline (`--request-timeout`).

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::error::ApiError;
use crate::state::AppState;

/// The client IP of a request, for handlers (`None` without a peer address,
/// e.g. a router driven by `oneshot` in a unit test).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(state.limits.client_ip(parts)))
    }
}

/// Answers non-WebSocket requests that take too long (a body trickled in
/// byte by byte) with `408`; an upgrade or an event stream answers at
/// once, so live sessions are not affected. The long-poll route is left
/// out of this layer ([`crate::routes`]).
pub async fn request_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} s; send it again at once",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}
