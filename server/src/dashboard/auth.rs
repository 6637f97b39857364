//! Logging in with the admin token, the session table, and CSRF tokens.
//!
//! A login exchanges the admin token (compared in constant time, counted
//! against the client IP's failure limit like the admin API's) for a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie, `Secure` when the
//! relay's public URL is `https`. Sessions live in memory: they end after
//! [`SESSION_TTL`], on logout, and when the relay restarts. Each session has
//! its own CSRF token, which every state-changing form sends back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use lobster_shared::ids;

use super::html::{bare, notice};
use crate::state::AppState;

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most live sessions; the oldest goes when a login would pass it.
const MAX_SESSIONS: usize = 1000;
const COOKIE: &str = "lobster_dashboard";

struct Session {
    csrf: String,
    expires: Instant,
}

/// The dashboard's state: the relay's, and who is logged in.
#[derive(Clone)]
pub struct DashState {
    pub app: AppState,
    pub sessions: Arc<Sessions>,
}

/// The logged-in sessions of this instance, by session id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn create(&self) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The CSRF token of a live session.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.csrf.clone())
    }

    fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// A logged-in operator; pages take this. Without a session, the request
/// is sent to the login page.
pub struct Operator {
    pub session: String,
    pub csrf: String,
}

impl Operator {
    /// The refusal of a form whose CSRF token is not the session's, if so.
    pub fn forged(&self, form_csrf: Option<&String>) -> Option<Response> {
        match form_csrf {
            Some(token) if ids::constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) => None,
            _ => Some((
                StatusCode::FORBIDDEN,
                bare(
                    "Refused",
                    &notice(
                        "error",
                        "the form's CSRF token is missing or stale: reload the page and try again",
                    ),
                ),
            )
                .into_response()),
        }
    }
}

impl FromRequestParts<DashState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &DashState) -> Result<Self, Response> {
        let session = session_id(&parts.headers).map(str::to_owned);
        match session.and_then(|id| state.sessions.csrf(&id).map(|csrf| (id, csrf))) {
            Some((session, csrf)) => Ok(Operator { session, csrf }),
            None if parts.method == axum::http::Method::GET => {
                Err(Redirect::to("/dashboard/login").into_response())
            }
            None => Err((
                StatusCode::UNAUTHORIZED,
                bare(
                    "Logged out",
                    "<p>Your session has ended. <a href=\"/dashboard/login\">Log in again</a>.</p>",
                ),
            )
                .into_response()),
        }
    }
}

pub async fn login_page() -> Response {
    login_form(StatusCode::OK, "").into_response()
}

fn login_form(status: StatusCode, message: &str) -> impl IntoResponse {
    let body = format!(
        "{message}<form method=\"post\" action=\"/dashboard/login\" class=\"stack\">\
         <label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">The relay's admin token: <code>--admin-token</code> / <code>RELAY_ADMIN_TOKEN</code>, \
         or the <code>admin_token</code> file in its data dir. Sessions last 12 hours and end when the relay restarts.</p>"
    );
    (status, bare("Log in", &body))
}

pub async fn login(
    State(state): State<DashState>,
    parts: axum::http::request::Parts,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let limits = &state.app.limits;
    let ip = limits.client_ip(&parts);
    if let Err(err) = limits.check_ip(ip) {
        return err.into_response();
    }
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    let expected = state.app.admin_token.expose();
    if token.is_empty() || !ids::constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        if let Some(err) = limits.refuse(ip, "dashboard login") {
            return err.into_response();
        }
        return login_form(
            StatusCode::UNAUTHORIZED,
            &notice("error", "wrong admin token"),
        )
        .into_response();
    }
    let (id, _) = state.sessions.create();
    tracing::info!(client = ?ip, "dashboard login");
    let secure = if state.app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
}

pub async fn logout(
    State(state): State<DashState>,
    operator: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = operator.forged(form.get("csrf")) {
        return refused;
    }
    state.sessions.remove(&operator.session);
    let cookie = format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/dashboard/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_their_own_csrf_and_end_on_removal() {
        let sessions = Sessions::default();
        let (a, csrf_a) = sessions.create();
        let (b, csrf_b) = sessions.create();
        assert_ne!(a, b);
        assert_ne!(csrf_a, csrf_b);
        assert_eq!(sessions.csrf(&a), Some(csrf_a));
        sessions.remove(&a);
        assert_eq!(sessions.csrf(&a), None);
        assert_eq!(sessions.csrf("nonsense"), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "x=1; lobster_dashboard=abc; y=2".parse().unwrap(),
        );
        assert_eq!(session_id(&headers), Some("abc"));
    }
}
