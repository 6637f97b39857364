//! The admin dashboard at `/dashboard` (`docs/dashboard.md`): server-rendered
//! pages over the same store and admin functions as the admin API, behind a
//! login with the admin token.
//!
//! Layout: `auth` (the login, the in-memory session table, the session
//! cookie and CSRF tokens), `html` (escaping and the page frame), `overview`
//! (figures from `/metrics`' counters and the store), `agents` and
//! `workspaces` (listing, create, revoke, rotate), `events` (filter, detail,
//! replay), `tail` (the live tail over SSE), and `assets/` (the CSS and the
//! script, embedded in the binary).
//!
//! Pages answer with a Content-Security-Policy that allows only this
//! origin's script and style files: no inline script, nothing from a CDN.

mod agents;
mod answer;
mod auth;
mod events;
mod html;
mod overview;
mod tail;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub use auth::{DashState, Sessions};

/// The dashboard's state: the relay's, plus the login sessions.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, to merge into the relay's router.
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState) -> Router<S> {
    let state = DashState {
        app,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/dashboard", get(overview::show))
        .route("/dashboard/", get(overview::show))
        .route("/dashboard/stats", get(overview::stats))
        .route("/dashboard/login", get(auth::login_page).post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/agents", get(agents::show).post(agents::create))
        .route("/dashboard/agents/{agent_id}/revoke", post(agents::revoke))
        .route("/dashboard/workspaces", get(workspaces::show))
        .route(
            "/dashboard/workspaces/{name}/rotate",
            post(workspaces::rotate),
        )
        .route("/dashboard/events", get(events::list))
        .route(
            "/dashboard/events/replay-failed",
            post(events::replay_failed),
        )
        .route("/dashboard/events/{id}", get(events::detail))
        .route("/dashboard/events/{id}/replay", post(events::replay))
        .route("/dashboard/tail", get(tail::show))
        .route("/dashboard/tail/stream", get(tail::stream))
        .route("/dashboard/assets/app.js", get(script))
        .route("/dashboard/assets/app.css", get(style))
        .layer(axum::middleware::from_fn(secure_headers))
        .with_state(state)
}

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Every dashboard answer: the CSP, no sniffing, no framing, no referrer;
/// pages (not assets) are never cached, as they may show a new API key.
async fn secure_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/dashboard/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
