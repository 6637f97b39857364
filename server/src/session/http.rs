//! Sessions over plain HTTP (SSE and long-poll): found by id, answered by
//! `POST /api/v1/agent/stream/{session_id}/acks`.
//!
//! An HTTP session's loop runs in a task of its own; requests reach it
//! through a channel. The map lives on this instance only: the requests of
//! a session must reach the instance that holds it.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lobster_shared::api::AnswersApplied;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::link::{AnswerBatch, BatchOutcome};
use super::registry::{Command, find_session, gone};
use crate::api::auth::AuthedAgent;
use crate::api::error::ApiError;
use crate::state::AppState;

/// Most acks plus nacks in one `POST`.
pub const MAX_BATCH: usize = 10_000;

/// The body of `POST .../acks`: the WebSocket's `ack` and `nack` frames,
/// batched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    #[serde(default)]
    acks: Vec<AckEntry>,
    #[serde(default)]
    nacks: Vec<NackEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckEntry {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NackEntry {
    id: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/agent/stream/{session_id}/acks` → `200 {"acked", "nacked"}`
/// once the answers are stored.
pub async fn post_answers(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    Path(session_id): Path<String>,
    body: Result<Json<Answers>, JsonRejection>,
) -> Result<Json<AnswersApplied>, ApiError> {
    let Json(answers) = body.map_err(|rejection| {
        // Wrong JSON types are malformed batches too (axum says 422).
        let status = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            "invalid_batch",
            format!(
                "{}; send {{\"acks\": [{{\"id\": \"evt_...\"}}], \"nacks\": [{{\"id\": \"evt_...\", \"reason\": \"...\"}}]}}",
                rejection.body_text()
            ),
        )
    })?;
    if answers.acks.len() + answers.nacks.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("at most {MAX_BATCH} acks and nacks in one request"),
        ));
    }
    let (_, tx) = find_session(&state.http_sessions, &state.agents, &agent, &session_id).await?;
    let (reply, outcome) = oneshot::channel();
    let batch = AnswerBatch {
        acks: answers.acks.into_iter().map(|a| a.id).collect(),
        nacks: answers
            .nacks
            .into_iter()
            .map(|n| (n.id, n.reason))
            .collect(),
        reply,
    };
    if tx.send(Command::Answers(batch)).await.is_err() {
        return Err(gone(&state.agents, &agent, &session_id).await);
    }
    let Ok(BatchOutcome {
        acked,
        nacked,
        acks_stored,
        nacks_stored,
    }) = outcome.await
    else {
        return Err(gone(&state.agents, &agent, &session_id).await);
    };
    let acks_stored = match acks_stored {
        Some(write) => write.await.unwrap_or(false),
        None => true,
    };
    if !(acks_stored && nacks_stored) {
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the relay could not store these answers; send them again",
        );
        err.retry_after_secs = Some(1);
        return Err(err);
    }
    Ok(Json(AnswersApplied { acked, nacked }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_mirror_the_ack_and_nack_frames() {
        let answers: Answers = serde_json::from_str(
            r#"{"acks":[{"id":"evt_1"}],"nacks":[{"id":"evt_2","reason":"500"},{"id":"evt_3"}]}"#,
        )
        .unwrap();
        assert_eq!(answers.acks[0].id, "evt_1");
        assert_eq!(answers.nacks[0].reason, "500");
        assert_eq!(answers.nacks[1].reason, "");
        assert!(serde_json::from_str::<Answers>(r#"{"ack":[{"id":"evt_1"}]}"#).is_err());
        assert!(serde_json::from_str::<Answers>(r#"{"acks":["evt_1"]}"#).is_err());
        let empty: Answers = serde_json::from_str("{}").unwrap();
        assert!(empty.acks.is_empty() && empty.nacks.is_empty());
    }
}
