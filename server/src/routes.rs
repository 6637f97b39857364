//! The relay's routes: the HTTP API ([`crate::api`]), the agent sessions
//! ([`crate::session`]), the dashboard and `/metrics`.

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::api::{admin, agent, callbacks, edge, error, health, replay, webhook, workspaces};
use crate::state::AppState;
use crate::{dashboard, metrics, session};

/// Every route of the relay, with the layers every request passes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/webhook/{relay_id}", post(webhook::ingest))
        .route("/api/v1/agent/me", get(agent::me))
        .route("/api/v1/agent/connect", get(session::connect))
        .route("/api/v1/agent/stream", get(session::stream))
        .route(
            "/api/v1/agent/stream/{session_id}/acks",
            post(session::post_answers),
        )
        .route(
            "/api/v1/agent/callback",
            get(callbacks::show)
                .put(callbacks::set)
                .delete(callbacks::clear),
        )
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
        .route("/healthz", get(health::health))
        .route("/readyz", get(health::ready))
        .merge(metrics::router())
        .merge(dashboard::router(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(edge::Deadline(state.config.request_timeout))
        // After the deadline: a long-poll waits by design, and its own cap
        // (a minute) bounds it.
        .route("/api/v1/agent/poll", get(session::poll))
        .layer(metrics::TrackHttp)
        .with_state(state)
}
