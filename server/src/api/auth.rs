//! Bearer authentication of agents and of the admin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lobster_shared::ids;

use super::{ApiError, AppState};
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

/// An authenticated, unrevoked agent.
pub struct AuthedAgent(pub Agent);

impl FromRequestParts<AppState> for AuthedAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("missing API key: send Authorization: Bearer <api_key>")
        })?;
        if !ids::api_key_is_well_formed(key) {
            return Err(ApiError::unauthorized(
                "invalid API key: check it, or create a new agent",
            ));
        }
        let agent = state.store.agent_by_key_hash(&ids::hash_key(key)).await?;
        agent.map(AuthedAgent).ok_or_else(|| {
            ApiError::unauthorized("invalid or revoked API key: check it, or create a new agent")
        })
    }
}

/// A request carrying the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "missing admin token: send Authorization: Bearer <RELAY_ADMIN_TOKEN>",
            )
        })?;
        if ids::constant_time_eq(token.as_bytes(), state.admin_token.expose().as_bytes()) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}
