//! What every request passes at the edge: the client IP extractor and the
//! request deadline (`--request-timeout`).

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
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
///
/// A layer of its own rather than `axum::middleware::from_fn`, which boxes
/// a future and clones the route's service for every request: this one
/// only adds the timer to the route's future.
#[derive(Clone, Copy)]
pub struct Deadline(pub Duration);

impl<S> tower::Layer<S> for Deadline {
    type Service = WithDeadline<S>;

    fn layer(&self, inner: S) -> WithDeadline<S> {
        WithDeadline {
            inner,
            limit: self.0,
        }
    }
}

/// A service whose answers are due within a time limit.
#[derive(Clone)]
pub struct WithDeadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> tower::Service<Request> for WithDeadline<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DueAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        DueAnswer {
            answer: self.inner.call(request),
            deadline: tokio::time::sleep(self.limit),
            limit: self.limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, or `408` once the time is up.
    pub struct DueAnswer<F> {
        #[pin]
        answer: F,
        #[pin]
        deadline: tokio::time::Sleep,
        limit: Duration,
    }
}

impl<F> Future for DueAnswer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.answer.poll(cx) {
            return Poll::Ready(answer);
        }
        ready!(this.deadline.poll(cx));
        Poll::Ready(Ok(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} s; send it again at once",
                this.limit.as_secs_f64()
            ),
        )
        .into_response()))
    }
}
