//! `POST /api/v1/webhook/{relay_id}`: verify, deduplicate, store, wake.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use lobster_shared::ids::{EventId, RelayId};
use lobster_shared::{api, signature};

use super::error::ApiError;
use crate::state::AppState;
use crate::store::{Inserted, NewEvent, now_ms};

pub async fn ingest(
    State(state): State<AppState>,
    Path(relay_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // No per-IP failure lockout here: GitHub, Stripe and NAT'd senders share
    // addresses, and another client's bad requests must never cost a
    // validly signed webhook its 202. Relay ids (128 random bits) and HMAC
    // signatures cannot be guessed; the per-agent and global rate limits
    // bound the work a flood of forgeries costs.
    // A relay id of the wrong shape is one no agent has.
    let agent = match RelayId::parse(&relay_id) {
        Ok(relay_id) => state.agents.by_relay_id(&relay_id).await?,
        Err(_) => None,
    };
    let agent = agent.ok_or_else(|| {
        ApiError::not_found(
            "unknown_relay",
            "no agent has this relay id; check the webhook URL",
        )
    })?;
    state.limits.check(&agent.agent_id)?;
    state.backlog.check(&state.store, &agent.agent_id).await?;
    let body = read_body(&headers, body, state.config.max_body).await?;
    let verifier = state
        .workspaces
        .verifier(&agent.workspace)
        .await?
        .ok_or_else(|| {
            tracing::error!(agent_id = %agent.agent_id, workspace = %agent.workspace, "agent of a workspace that does not exist");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unknown_workspace",
                "this agent's workspace does not exist on this relay",
            )
        })?;
    let now = now_ms();
    let verified = signature::verify(verifier.scheme, &verifier.keys, &headers, &body, now / 1000)
        .map_err(|err| ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string()))?;
    let event_type = verified
        .event_type
        .clone()
        .unwrap_or_else(|| event_type_from_body(&body));
    let event = NewEvent {
        id: EventId::generate(),
        agent_id: agent.agent_id.clone(),
        event_type,
        received_at: now,
        headers: header_pairs(&headers),
        body,
        dedup_key: Some(verified.dedup_key),
    };
    let inserted = state.store.insert_event(event).await?;
    match &inserted {
        Inserted::New(id) | Inserted::Pushed(id) => {
            if matches!(inserted, Inserted::New(_)) {
                state.bus.wake(&agent.agent_id);
            }
            Ok((StatusCode::ACCEPTED, Json(accepted(id, false))).into_response())
        }
        Inserted::Duplicate(id) => Ok((StatusCode::OK, Json(accepted(id, true))).into_response()),
    }
}

fn accepted(id: &EventId, duplicate: bool) -> api::Accepted {
    api::Accepted {
        id: id.to_string(),
        duplicate: Some(duplicate),
    }
}

/// Reads the body under the limit; an oversized body is refused before it
/// is buffered whole, whether it says its length or comes chunked.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than this relay's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(err) => Err(ApiError::bad_request(
            "bad_body",
            format!("could not read the request body: {err}"),
        )),
    }
}

/// The JSON body's `type`, else its `event`, else `unknown`.
pub fn event_type_from_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
        event: Option<serde_json::Value>,
    }
    let parsed: Option<Typed> = serde_json::from_slice(body).ok();
    parsed
        .and_then(|t| {
            [t.kind, t.event]
                .into_iter()
                .flatten()
                .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The request headers in order; values that are not UTF-8 are kept lossily.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_comes_from_type_then_event_then_unknown() {
        assert_eq!(
            event_type_from_body(br#"{"type":"message.received","event":"x"}"#),
            "message.received"
        );
        assert_eq!(event_type_from_body(br#"{"event":"ping"}"#), "ping");
        assert_eq!(
            event_type_from_body(br#"{"type":5,"event":"ping"}"#),
            "ping"
        );
        assert_eq!(event_type_from_body(br#"[1,2]"#), "unknown");
        assert_eq!(event_type_from_body(b"\xff\xfe"), "unknown");
        assert_eq!(event_type_from_body(b""), "unknown");
    }
}
