//! Per-route HTTP figures: a tower layer that counts every answer by route
//! pattern and status and times it.
//!
//! Every request passes here, the webhooks most of all, so the figures'
//! handles are made once per route and status and kept (a request finds
//! its route's in a map as small as the route table): building a
//! labelled key for each request (two label strings, two registry
//! lookups) and `axum::middleware::from_fn` (a boxed future and a clone
//! of the route's service per request) came to about a tenth of the
//! relay's HTTP workers' time under a webhook load.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use metrics::{Counter, Histogram};

use super::{HTTP_DURATION, HTTP_REQUESTS, UNMATCHED, handle};

/// The layer (`Router::layer(metrics::TrackHttp)`).
#[derive(Clone, Copy, Default)]
pub struct TrackHttp;

impl<S> tower::Layer<S> for TrackHttp {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        // Touching the handle installs the recorder before the first figure.
        handle();
        Tracked { inner }
    }
}

/// A service whose answers are counted and timed.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackedAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| route(path.as_str()));
        TrackedAnswer {
            answer: self.inner.call(request),
            route: route.unwrap_or_else(|| self::route(UNMATCHED)),
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, counted when it is ready.
    pub struct TrackedAnswer<F> {
        #[pin]
        answer: F,
        route: Arc<Route>,
        started: Instant,
    }
}

impl<F> Future for TrackedAnswer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.answer.poll(cx));
        this.route
            .duration
            .record(this.started.elapsed().as_secs_f64());
        this.route.answered(response.status().as_u16());
        Poll::Ready(Ok(response))
    }
}

/// One route pattern's figures.
struct Route {
    pattern: String,
    duration: Histogram,
    /// The answer counter of each status seen (a handful per route).
    answers: Mutex<Vec<(u16, Counter)>>,
}

impl Route {
    /// Counts one answer with `status`.
    fn answered(&self, status: u16) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, counter)) = answers.iter().find(|(s, _)| *s == status) {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(
            HTTP_REQUESTS,
            "route" => self.pattern.clone(),
            "status" => status.to_string()
        );
        counter.increment(1);
        answers.push((status, counter));
    }
}

/// The figures of `pattern`, made the first time it is seen. Patterns are
/// the router's, so the map stays as small as the route table.
fn route(pattern: &str) -> Arc<Route> {
    static ROUTES: OnceLock<Mutex<HashMap<String, Arc<Route>>>> = OnceLock::new();
    let mut routes = ROUTES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(route) = routes.get(pattern) {
        return route.clone();
    }
    let route = Arc::new(Route {
        pattern: pattern.to_owned(),
        duration: metrics::histogram!(HTTP_DURATION, "route" => pattern.to_owned()),
        answers: Mutex::new(Vec::new()),
    });
    routes.insert(pattern.to_owned(), route.clone());
    route
}
