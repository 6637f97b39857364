//! The overview: rates, queue depth, sessions, recent failures.
//!
//! Counters come from the same recorder as `/metrics` (its rendered text,
//! so the figures cannot drift from what Prometheus scrapes); rates are
//! worked out by the page's script from two readings a few seconds apart.
//! Queue depth and failures come from the store.

use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::DashState;
use super::auth::Operator;
use super::html::{notice, page};
use crate::metrics;
use crate::store::now_ms;

const WEBHOOK_ROUTE: &str = "route=\"/api/v1/webhook/{relay_id}\"";

/// The figures the overview shows.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    /// Webhooks accepted (2xx answers on the webhook route).
    pub ingested: f64,
    pub delivered: f64,
    pub acked: f64,
    pub nacked: f64,
    pub sessions: f64,
}

/// Reads the figures out of Prometheus' text format.
pub fn figures(text: &str) -> Figures {
    let mut figures = Figures::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        match name {
            n if n == metrics::HTTP_REQUESTS
                && series.contains(WEBHOOK_ROUTE)
                && series.contains("status=\"2") =>
            {
                figures.ingested += value
            }
            n if n == metrics::EVENTS_DELIVERED => figures.delivered += value,
            n if n == metrics::EVENTS_ACKED => figures.acked += value,
            n if n == metrics::EVENTS_NACKED => figures.nacked += value,
            n if n == metrics::SESSIONS => figures.sessions += value,
            _ => {}
        }
    }
    figures
}

async fn snapshot(state: &DashState) -> Result<Value, crate::store::StoreError> {
    let figures = figures(&metrics::handle().render());
    let agents = state.app.store.agent_count().await?;
    let queue = state.app.store.queue_depth().await?;
    let failed_hour = state.app.store.failed_since(now_ms() - 3_600_000).await?;
    Ok(json!({
        "at_ms": now_ms(),
        "ingested_total": figures.ingested,
        "delivered_total": figures.delivered,
        "acked_total": figures.acked,
        "nacked_total": figures.nacked,
        "sessions_online": figures.sessions,
        "queue_depth": queue,
        "agents": agents,
        "failed_last_hour": failed_hour,
    }))
}

/// `GET /dashboard/stats`: the overview's figures as JSON, for its script.
pub async fn stats(State(state): State<DashState>, _: Operator) -> Response {
    match snapshot(&state).await {
        Ok(value) => Json(value).into_response(),
        Err(err) => super::events::store_failed(err),
    }
}

pub async fn show(State(state): State<DashState>, op: Operator) -> Html<String> {
    let snap = match snapshot(&state).await {
        Ok(v) => v,
        Err(err) => {
            return page(
                "Overview",
                &op.csrf,
                &notice("error", &format!("the store did not answer: {err}")),
            );
        }
    };
    let tile = |key: &str, label: &str, value: String| {
        format!(
            "<div class=\"tile\"><span class=\"label\">{label}</span>\
             <span class=\"value\" data-stat=\"{key}\">{value}</span></div>"
        )
    };
    let num = |key: &str| snap[key].as_f64().unwrap_or(0.0).to_string();
    let body = format!(
        "<section class=\"tiles\" id=\"overview\" data-stats=\"/dashboard/stats\">{}{}{}{}{}{}</section>\
         <p class=\"hint\">Rates are per second over the last few seconds, from the counters behind \
         <code>/metrics</code> on this instance; they update while the page is open.</p>\
         <section class=\"tiles\">{}{}{}</section>",
        tile("ingest_rate", "Ingest /s", "…".into()),
        tile("delivery_rate", "Acks /s", "…".into()),
        tile("queue_depth", "Queue depth", num("queue_depth")),
        tile("sessions_online", "Sessions online", num("sessions_online")),
        tile(
            "failed_last_hour",
            "Failed, last hour",
            num("failed_last_hour")
        ),
        tile("agents", "Agents", num("agents")),
        tile("ingested_total", "Webhooks accepted", num("ingested_total")),
        tile("delivered_total", "Frames sent", num("delivered_total")),
        tile("nacked_total", "Nacks", num("nacked_total")),
    );
    page("Overview", &op.csrf, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_the_exposition() {
        let text = "# TYPE lobster_http_requests_total counter\n\
            lobster_http_requests_total{route=\"/api/v1/webhook/{relay_id}\",status=\"202\"} 5\n\
            lobster_http_requests_total{route=\"/api/v1/webhook/{relay_id}\",status=\"200\"} 2\n\
            lobster_http_requests_total{route=\"/api/v1/webhook/{relay_id}\",status=\"401\"} 9\n\
            lobster_http_requests_total{route=\"/healthz\",status=\"200\"} 4\n\
            lobster_events_acked_total 3\nlobster_sessions 2\n";
        let f = figures(text);
        assert_eq!(f.ingested, 7.0);
        assert_eq!(f.acked, 3.0);
        assert_eq!(f.sessions, 2.0);
    }
}
