//! The HTTP surface: routes, shared state, and the JSON error edge.

pub(crate) mod admin;
mod agent;
pub(crate) mod auth;
pub mod backlog;
mod error;
mod limits;
pub mod replay;
mod webhook;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use lobster_shared::Secret;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use agent::reserve_session;
pub use auth::AuthedAgent;
pub use error::ApiError;
pub use limits::{ClientIp, Limits};

use crate::bus::Bus;
use crate::config::Config;
use crate::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Agents by relay id and key hash, cached.
    pub agents: crate::agent_cache::AgentDirectory,
    /// Wake-ups and revocations, local and (with Redis) across instances.
    pub bus: Bus,
    pub config: Arc<Config>,
    pub public_url: Arc<str>,
    pub admin_token: Secret,
    pub limits: Arc<Limits>,
    /// `--agent-max-pending`: stored, undelivered events per agent.
    pub backlog: Arc<backlog::BacklogCap>,
    /// Workspace verifiers, cached; `default` from the configuration.
    pub workspaces: Arc<crate::workspaces::Workspaces>,
    /// Cancelled when the relay drains; sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Live sessions, awaited on shutdown.
    pub sessions: TaskTracker,
    /// This instance's SSE and long-poll sessions, by id.
    pub http_sessions: Arc<crate::session::HttpSessions>,
    /// `last_seen` times not yet written.
    pub last_seen: Arc<crate::last_seen::LastSeen>,
}

impl AppState {
    pub fn webhook_url(&self, relay_id: &str) -> String {
        format!("{}/api/v1/webhook/{relay_id}", self.public_url)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/webhook/{relay_id}", post(webhook::ingest))
        .route("/api/v1/agent/me", get(agent::me))
        .route("/api/v1/agent/connect", get(agent::connect))
        .route("/api/v1/agent/stream", get(crate::session::stream))
        .route(
            "/api/v1/agent/stream/{session_id}/acks",
            post(crate::session::post_answers),
        )
        .route("/api/v1/agent/poll", get(crate::session::poll))
        .route("/api/v1/agent/events", get(agent::list_events))
        .route("/api/v1/agent/events/{id}", get(agent::event_detail))
        .route("/api/v1/agent/events/replay-failed", post(replay::agent))
        .route("/api/v1/admin/events/replay-failed", post(replay::admin))
        .route("/api/v1/agent/events/{id}/replay", post(agent::replay))
        .route("/api/v1/agent/test-event", post(agent::test_event))
        .route(
            "/api/v1/admin/agents",
            post(admin::create_agent).get(admin::list_agents),
        )
        .route(
            "/api/v1/admin/agents/{agent_id}",
            delete(admin::revoke_agent),
        )
        .route(
            "/api/v1/admin/workspaces",
            post(workspaces::create).get(workspaces::list),
        )
        .route(
            "/api/v1/admin/workspaces/{name}/secrets",
            put(workspaces::replace_secrets),
        )
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .merge(crate::metrics::router())
        .merge(crate::dashboard::router(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::request_deadline,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the store answers and, where configured, Redis does.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (storage, storage_error) = match state.store.ping().await {
        Ok(()) => ("ok".to_owned(), None),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: storage unreachable");
            ("unreachable".to_owned(), Some(err.to_string()))
        }
    };
    let redis = state.bus.ping().await.map(|answer| match answer {
        Ok(()) => "ok".to_owned(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: redis unreachable");
            "unreachable".to_owned()
        }
    });
    let ready = storage == "ok" && redis.as_deref().is_none_or(|r| r == "ok");
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "storage": storage,
        "redis": redis,
    });
    if let Some(error) = storage_error {
        body["storage_error"] = serde_json::Value::String(error);
    }
    (status, axum::Json(body)).into_response()
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: crate::store::Millis) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
