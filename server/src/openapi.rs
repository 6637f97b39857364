//! `docs/openapi.json`: the OpenAPI 3.1 document of the JSON endpoints,
//! built from the body types of [`lobster_shared::api`] and checked against
//! the committed file, so a changed body fails the tests until the document
//! is written again:
//!
//! ```sh
//! LOBSTER_WRITE_OPENAPI=1 cargo test -p lobster-server --lib openapi
//! ```
//!
//! The operations are declared here, one function per route (the handlers
//! are in [`crate::api`]); the WebSocket, Server-Sent Events and long-poll
//! streams themselves and `/metrics` are described in
//! `docs/api-reference.md` only (the acks of the two HTTP streams are here).

#![allow(dead_code)]

use lobster_shared::api::{
    Accepted, AgentList, AgentMe, AnswersApplied, Attempt, BodyEncoding, CallbackSet,
    CallbackShown, CreateWorkspace, CreatedAgent, ErrorBody, ErrorDetail, EventDetail, EventPage,
    EventSummary, ListedAgent, ReplaceSecrets, ReplayedFailed, Revoked, SetCallback, Workspace,
    WorkspaceList,
};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lobster-relay",
        description = "Webhooks for agents without a public address: the relay's HTTP API. See docs/api-reference.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        webhook,
        agent_me,
        list_events,
        event_detail,
        replay_event,
        replay_failed,
        test_event,
        set_callback,
        show_callback,
        clear_callback,
        create_agent,
        list_agents,
        revoke_agent,
        admin_replay_failed,
        create_workspace,
        list_workspaces,
        replace_workspace_secrets,
        stream_acks,
    ),
    components(schemas(
        Accepted,
        AgentList,
        AgentMe,
        AnswersApplied,
        Attempt,
        BodyEncoding,
        CallbackSet,
        CallbackShown,
        CreateWorkspace,
        CreatedAgent,
        ErrorBody,
        ErrorDetail,
        EventDetail,
        EventPage,
        EventSummary,
        ListedAgent,
        ReplaceSecrets,
        ReplayedFailed,
        Revoked,
        SetCallback,
        Workspace,
        WorkspaceList,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "webhooks", description = "What senders call: no key, a signature."),
        (name = "agent", description = "An agent's own API, with its key."),
        (name = "admin", description = "The relay operator's API, with the admin token."),
    )
)]
pub struct ApiDoc;

/// `Authorization: Bearer <agent key | admin token>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Accepts a webhook: stored durably before the `202`.
#[utoipa::path(
    post, path = "/api/v1/webhook/{relay_id}", tag = "webhooks",
    params(("relay_id" = String, Path, description = "The agent's relay id (`rly_...`)")),
    request_body(content = String, description = "Any body, stored byte for byte", content_type = "*/*"),
    responses(
        (status = 202, description = "Stored; it will reach the agent", body = Accepted),
        (status = 200, description = "This delivery was stored before", body = Accepted),
        (status = 401, description = "Missing or invalid signature", body = ErrorBody),
        (status = 404, description = "Unknown relay id", body = ErrorBody),
        (status = 413, description = "Body over --max-body", body = ErrorBody),
        (status = 429, description = "Rate limited or the agent's queue is full", body = ErrorBody),
        (status = 503, description = "Nothing was stored; retry", body = ErrorBody),
    )
)]
fn webhook() {}

/// Who the key belongs to, and what waits.
#[utoipa::path(
    get, path = "/api/v1/agent/me", tag = "agent", security(("bearer" = [])),
    responses(
        (status = 200, body = AgentMe),
        (status = 401, body = ErrorBody),
    )
)]
fn agent_me() {}

/// The agent's events, newest first.
#[utoipa::path(
    get, path = "/api/v1/agent/events", tag = "agent", security(("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "pending, delivering, delivered, failed, expired or skipped"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("before" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
fn list_events() {}

/// One event with its headers, body and attempts.
#[utoipa::path(
    get, path = "/api/v1/agent/events/{id}", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "An event id (`evt_...`)")),
    responses(
        (status = 200, body = EventDetail),
        (status = 404, body = ErrorBody),
    )
)]
fn event_detail() {}

/// Queues an event again, same id.
#[utoipa::path(
    post, path = "/api/v1/agent/events/{id}/replay", tag = "agent", security(("bearer" = [])),
    params(("id" = String, Path, description = "An event id (`evt_...`)")),
    responses(
        (status = 202, body = Accepted),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Leased to a session right now", body = ErrorBody),
    )
)]
fn replay_event() {}

/// Queues the agent's failed events (dead letters) again.
#[utoipa::path(
    post, path = "/api/v1/agent/events/replay-failed", tag = "agent", security(("bearer" = [])),
    request_body(content = Object, description = "Optional `{\"since\", \"type\"}`"),
    responses(
        (status = 200, body = ReplayedFailed),
        (status = 400, body = ErrorBody),
    )
)]
fn replay_failed() {}

/// Stores a test event for the agent.
#[utoipa::path(
    post, path = "/api/v1/agent/test-event", tag = "agent", security(("bearer" = [])),
    request_body(content = Object, description = "`{\"event_type\", \"data\"}`"),
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = ErrorBody),
    )
)]
fn test_event() {}

/// Sets the agent's callback URLs (push delivery); the signing secret is
/// in this answer only.
#[utoipa::path(
    put, path = "/api/v1/agent/callback", tag = "agent", security(("bearer" = [])),
    request_body = SetCallback,
    responses(
        (status = 200, body = CallbackSet),
        (status = 400, description = "`invalid_callback_url` or `callback_address_forbidden`", body = ErrorBody),
        (status = 409, description = "`encryption_key_required`: the relay has no --encryption-key", body = ErrorBody),
    )
)]
fn set_callback() {}

/// The agent's callback URLs, without the secret.
#[utoipa::path(
    get, path = "/api/v1/agent/callback", tag = "agent", security(("bearer" = [])),
    responses(
        (status = 200, body = CallbackShown),
        (status = 404, description = "`callback_not_set`", body = ErrorBody),
    )
)]
fn show_callback() {}

/// Stops push delivery.
#[utoipa::path(
    delete, path = "/api/v1/agent/callback", tag = "agent", security(("bearer" = [])),
    responses(
        (status = 204, description = "Cleared"),
        (status = 404, description = "`callback_not_set`", body = ErrorBody),
    )
)]
fn clear_callback() {}

/// Creates an agent; its key is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/admin/agents", tag = "admin", security(("bearer" = [])),
    request_body(content = Object, description = "`{\"name\", \"workspace\"?}`"),
    responses(
        (status = 201, body = CreatedAgent),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
fn create_agent() {}

/// Every live agent.
#[utoipa::path(
    get, path = "/api/v1/admin/agents", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = AgentList),
        (status = 401, body = ErrorBody),
    )
)]
fn list_agents() {}

/// Revokes an agent: its key stops working and its sessions close.
#[utoipa::path(
    delete, path = "/api/v1/admin/agents/{agent_id}", tag = "admin", security(("bearer" = [])),
    params(("agent_id" = String, Path, description = "An agent id (`agt_...`)")),
    responses(
        (status = 200, body = Revoked),
        (status = 404, body = ErrorBody),
    )
)]
fn revoke_agent() {}

/// Queues failed events of every agent, or of one, again.
#[utoipa::path(
    post, path = "/api/v1/admin/events/replay-failed", tag = "admin", security(("bearer" = [])),
    request_body(content = Object, description = "Optional `{\"since\", \"type\", \"agent_id\"}`"),
    responses(
        (status = 200, body = ReplayedFailed),
        (status = 400, body = ErrorBody),
    )
)]
fn admin_replay_failed() {}

/// Creates a workspace: its own signature scheme and secrets, which never
/// come back.
#[utoipa::path(
    post, path = "/api/v1/admin/workspaces", tag = "admin", security(("bearer" = [])),
    request_body = CreateWorkspace,
    responses(
        (status = 201, body = Workspace),
        (status = 400, body = ErrorBody),
        (status = 409, description = "`workspace_exists`", body = ErrorBody),
    )
)]
fn create_workspace() {}

/// Every workspace, the default one (from the relay's flags) first.
#[utoipa::path(
    get, path = "/api/v1/admin/workspaces", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = WorkspaceList),
        (status = 401, body = ErrorBody),
    )
)]
fn list_workspaces() {}

/// Replaces a stored workspace's secrets (rotation: keep the old one in
/// the list during the switch).
#[utoipa::path(
    put, path = "/api/v1/admin/workspaces/{name}/secrets", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "A stored workspace's name")),
    request_body = ReplaceSecrets,
    responses(
        (status = 200, body = Workspace),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
fn replace_workspace_secrets() {}

/// Acks and nacks of a Server-Sent Events or long-poll session, in one
/// batch: `{"acks": [{"id"}], "nacks": [{"id", "reason"?}]}`.
#[utoipa::path(
    post, path = "/api/v1/agent/stream/{session_id}/acks", tag = "agent", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "The session id of the stream's `ready`")),
    request_body(content = Object, description = "`{\"acks\": [...], \"nacks\": [...]}`"),
    responses(
        (status = 200, body = AnswersApplied),
        (status = 400, description = "`invalid_batch`", body = ErrorBody),
        (status = 404, description = "`session_not_found`: the session has ended", body = ErrorBody),
        (status = 503, description = "Not stored; send them again", body = ErrorBody),
    )
)]
fn stream_acks() {}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../docs/openapi.json");

    #[test]
    fn the_committed_openapi_document_is_current() {
        let built = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes")
            + "\n";
        if std::env::var_os("LOBSTER_WRITE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
            std::fs::write(path, &built).expect("docs/openapi.json is writable");
            return;
        }
        assert!(
            built == COMMITTED,
            "docs/openapi.json is out of date: run `LOBSTER_WRITE_OPENAPI=1 cargo test -p lobster-server --lib openapi` and commit it"
        );
    }

    #[test]
    fn every_body_type_is_in_the_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for name in [
            "AgentMe",
            "EventPage",
            "EventDetail",
            "Accepted",
            "ErrorBody",
        ] {
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} missing"
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
