//! A session's place among its agent's sessions (`--max-sessions-per-agent`).

use axum::http::StatusCode;
use lobster_shared::ids::AgentId;

use crate::api::error::ApiError;
use crate::state::AppState;

/// How long a client is asked to wait when its agent has too many sessions.
const SESSIONS_RETRY_AFTER_SECS: u64 = 10;

/// Reserves a session place for the agent (taken when the session
/// registers with the hub), or `429 too_many_sessions` when it already has
/// `--max-sessions-per-agent` sessions on this instance.
pub fn reserve_session(state: &AppState, agent_id: &AgentId) -> Result<(), ApiError> {
    let max = state.config.max_sessions_per_agent as usize;
    if state.bus.hub().try_reserve(agent_id, max) {
        return Ok(());
    }
    tracing::info!(agent_id = %agent_id, max, "session refused: too many sessions");
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sessions",
        format!(
            "this agent already has {max} live sessions on this relay; close one, or ask the relay admin to raise --max-sessions-per-agent"
        ),
    );
    err.retry_after_secs = Some(SESSIONS_RETRY_AFTER_SECS);
    Err(err)
}
