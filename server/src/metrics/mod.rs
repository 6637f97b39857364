//! Prometheus metrics: `GET /metrics`, per-route HTTP figures, and the
//! helpers the delivery path calls.
//!
//! The `metrics` facade has one recorder per process. It is installed the
//! first time it is needed and its render handle kept in a `OnceLock`, so
//! several relays in one process (tests) share it instead of failing. If
//! some other recorder was installed first, `/metrics` still answers, with
//! whatever this module's own recorder saw (nothing), and says so once in
//! the log.
//!
//! Labels are bounded on purpose: HTTP figures are labelled with the
//! route's pattern (`/api/v1/webhook/{relay_id}`), never the path a client
//! sent, so neither relay ids nor random paths become series.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod http;

pub use http::TrackHttp;

/// Requests answered, by `route` and `status`.
pub const HTTP_REQUESTS: &str = "lobster_http_requests_total";
/// Seconds from a request's arrival to its answer's headers, by `route`.
pub const HTTP_DURATION: &str = "lobster_http_request_duration_seconds";
/// Event frames sent to sessions (first deliveries and redeliveries).
pub const EVENTS_DELIVERED: &str = "lobster_events_delivered_total";
/// Acks received.
pub const EVENTS_ACKED: &str = "lobster_events_acked_total";
/// Nacks received.
pub const EVENTS_NACKED: &str = "lobster_events_nacked_total";
/// Leases that ran out before an ack or nack arrived.
pub const EVENTS_ACK_TIMEOUTS: &str = "lobster_events_ack_timeouts_total";
/// Live agent sessions on this instance, every transport.
pub const SESSIONS: &str = "lobster_sessions";
/// Sessions opened since start.
pub const SESSIONS_OPENED: &str = "lobster_sessions_opened_total";
/// Undelivered events in the store, every agent's (refreshed every few seconds).
pub const QUEUE_DEPTH: &str = "lobster_queue_depth";
/// Events per durable commit (group commit batch sizes).
pub const COMMIT_BATCH: &str = "lobster_commit_batch_size";

/// The `route` label of requests that matched no route (404s).
const UNMATCHED: &str = "unmatched";
/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process's render handle; installs the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install)
}

fn install() -> PrometheusHandle {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => describe(),
        Err(err) => {
            tracing::warn!(error = %err, "another metrics recorder is installed; /metrics stays empty")
        }
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        // Rendering drains histograms too: scrapes keep the figures right,
        // only memory between scrapes is unbounded.
        tracing::warn!(error = %err, "cannot start the metrics upkeep thread");
    }
    handle
}

fn builder() -> PrometheusBuilder {
    let buckets = |builder: PrometheusBuilder, name: &str, values: &[f64]| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), values)
            .expect("bucket lists are not empty")
    };
    let builder = buckets(PrometheusBuilder::new(), HTTP_DURATION, DURATION_BUCKETS);
    buckets(builder, COMMIT_BATCH, BATCH_BUCKETS)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route pattern and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route pattern."
    );
    describe_counter!(EVENTS_DELIVERED, "Event frames sent to agent sessions.");
    describe_counter!(EVENTS_ACKED, "Events acked by agents.");
    describe_counter!(EVENTS_NACKED, "Events nacked by agents.");
    describe_counter!(
        EVENTS_ACK_TIMEOUTS,
        "Deliveries neither acked nor nacked within the ack timeout."
    );
    describe_gauge!(
        SESSIONS,
        "Live agent sessions on this instance (WebSocket, SSE, long-poll)."
    );
    describe_counter!(SESSIONS_OPENED, "Agent sessions opened (every transport).");
    describe_histogram!(COMMIT_BATCH, "Events made durable per commit.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Events stored and not yet delivered (pending or being delivered), all agents."
    );
    // Present from the first scrape, so rate() and alerts see a zero, not
    // a missing series.
    for name in [
        EVENTS_DELIVERED,
        EVENTS_ACKED,
        EVENTS_NACKED,
        EVENTS_ACK_TIMEOUTS,
        SESSIONS_OPENED,
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!(SESSIONS).increment(0.0);
}

/// `GET /metrics`: no authentication (`docs/api-reference.md`, "Operations"). Mount it where
/// only the scraper can reach it if the figures are sensitive.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    // Install the recorder now: counts made before the first scrape would
    // otherwise go nowhere.
    handle();
    Router::new().route("/metrics", get(render))
}

async fn render() -> Response {
    let body = handle().render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The counter `name`, looked up once: these count every event.
fn counter(cell: &'static OnceLock<Counter>, name: &'static str) -> &'static Counter {
    cell.get_or_init(|| {
        // Installs the recorder first: a handle taken before would count
        // nowhere for good.
        handle();
        metrics::counter!(name)
    })
}

/// An event frame went out to a session (any attempt).
pub fn event_delivered() {
    static COUNTER: OnceLock<Counter> = OnceLock::new();
    counter(&COUNTER, EVENTS_DELIVERED).increment(1);
}

/// An agent acked an event.
pub fn event_acked() {
    static COUNTER: OnceLock<Counter> = OnceLock::new();
    counter(&COUNTER, EVENTS_ACKED).increment(1);
}

/// An agent nacked an event.
pub fn event_nacked() {
    static COUNTER: OnceLock<Counter> = OnceLock::new();
    counter(&COUNTER, EVENTS_NACKED).increment(1);
}

/// A lease ran out before the agent answered.
pub fn event_ack_timeout() {
    static COUNTER: OnceLock<Counter> = OnceLock::new();
    counter(&COUNTER, EVENTS_ACK_TIMEOUTS).increment(1);
}

/// An agent session started; pair with [`session_closed`].
pub fn session_opened() {
    metrics::gauge!(SESSIONS).increment(1.0);
    metrics::counter!(SESSIONS_OPENED).increment(1);
}

/// An agent session ended, for whatever reason.
pub fn session_closed() {
    metrics::gauge!(SESSIONS).decrement(1.0);
}

/// The store holds `events` undelivered events.
pub fn queue_depth(events: u64) {
    metrics::gauge!(QUEUE_DEPTH).set(events as f64);
}

/// One durable commit made `events` events durable.
pub fn commit_batch(events: usize) {
    metrics::histogram!(COMMIT_BATCH).record(events as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get_text(app: Router, path: &str) -> (u16, String) {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn app() -> Router {
        Router::new()
            .route("/hook/{id}", get(|| async { "ok" }))
            .merge(router())
            .layer(TrackHttp)
    }

    #[tokio::test]
    async fn routes_are_labelled_by_pattern_never_by_path() {
        assert_eq!(get_text(app(), "/hook/rly_secret_one").await.0, 200);
        assert_eq!(get_text(app(), "/no/such/rly_secret_two").await.0, 404);
        session_opened();
        commit_batch(3);
        let (status, text) = get_text(app(), "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            text.contains(r#"lobster_http_requests_total{route="/hook/{id}",status="200"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lobster_http_requests_total{route="unmatched",status="404"}"#),
            "{text}"
        );
        assert!(
            text.contains(
                "lobster_http_request_duration_seconds_bucket{route=\"/hook/{id}\",le=\"0.005\"}"
            ),
            "{text}"
        );
        assert!(text.contains("lobster_commit_batch_size_bucket"), "{text}");
        assert!(text.contains("lobster_sessions "), "{text}");
        assert!(!text.contains("rly_secret"), "{text}");
    }

    #[test]
    fn a_second_install_in_one_process_is_harmless() {
        let first = handle() as *const _;
        assert_eq!(first, handle() as *const _);
        // A recorder installed by someone else must not panic us either.
        let _ = metrics::set_global_recorder(builder().build_recorder());
        handle().render();
    }
}
