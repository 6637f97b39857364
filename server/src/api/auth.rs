//! Bearer authentication of agents and of the admin.
//!
//! Every refusal counts against the client IP's failure limit. An IP over
//! it gets `429` instead of `401` for wrong agent keys, but a valid agent
//! key always passes: agents behind one NAT share an address, and one
//! misconfigured agent must not lock out the rest (keys are 59 random
//! characters; the limit is a second line, not what keeps them safe). The
//! admin token may be one an operator chose, so an IP over the limit gets
//! `429` before the token is even compared.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lobster_shared::ids;

use super::error::ApiError;
use crate::state::AppState;
use crate::store::Agent;

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An authenticated, unrevoked agent, as the agent cache holds it.
pub struct AuthedAgent(pub Arc<Agent>);

impl FromRequestParts<AppState> for AuthedAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = state.limits.client_ip(parts);
        let refuse = |message: &str| {
            state
                .limits
                .refuse(ip, "agent key")
                .unwrap_or_else(|| ApiError::unauthorized(message))
        };
        let key = bearer(parts)
            .ok_or_else(|| refuse("missing API key: send Authorization: Bearer <api_key>"))?;
        if !ids::api_key_is_well_formed(key) {
            return Err(refuse("invalid API key: check it, or create a new agent"));
        }
        let agent = state.agents.by_key_hash(&ids::hash_key(key)).await?;
        agent
            .map(AuthedAgent)
            .ok_or_else(|| refuse("invalid or revoked API key: check it, or create a new agent"))
    }
}

/// A request carrying the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = state.limits.client_ip(parts);
        state.limits.check_ip(ip)?;
        let refuse = |message: &str| {
            state
                .limits
                .refuse(ip, "admin token")
                .unwrap_or_else(|| ApiError::unauthorized(message))
        };
        let token = bearer(parts).ok_or_else(|| {
            refuse("missing admin token: send Authorization: Bearer <RELAY_ADMIN_TOKEN>")
        })?;
        if ids::constant_time_eq(token.as_bytes(), state.admin_token.expose().as_bytes()) {
            Ok(Admin)
        } else {
            Err(refuse("wrong admin token"))
        }
    }
}
