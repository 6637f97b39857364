//! `admin create-workspace | list-workspaces | rotate-workspace-secrets`.
//!
//! Secrets go to the relay and never come back: answers show how many a
//! workspace holds and a short fingerprint of each.

use std::fmt::Write as _;

use lobster_shared::Secret;
use lobster_shared::signature::Scheme;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiClient, ApiError};
use crate::global::endpoint;
use crate::ui::field;

pub(super) const WORKSPACES: [&str; 4] = ["api", "v1", "admin", "workspaces"];

/// The body of `POST /api/v1/admin/workspaces`.
pub(super) fn create_body(
    name: &str,
    scheme: Scheme,
    secrets: &[Secret],
    allow_unsigned: bool,
) -> Value {
    let secrets: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    let mut body = json!({ "name": name, "signature_scheme": scheme, "secrets": secrets });
    if allow_unsigned {
        body["allow_unsigned"] = json!(true);
    }
    body
}

/// `PUT /api/v1/admin/workspaces/{name}/secrets`. The shared [`ApiClient`]
/// has no `put` yet, so this sends the one PUT itself, with the same
/// error shapes.
pub(super) async fn put_secrets(
    client: &ApiClient,
    token: &Secret,
    name: &str,
    secrets: &[Secret],
) -> Result<Value, ApiError> {
    let mut segments = WORKSPACES.to_vec();
    segments.extend([name, "secrets"]);
    let url: Url = endpoint(client.base(), &segments);
    let path = url.path().to_owned();
    let secrets: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    let http = crate::trust::http_client()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|err| ApiError::Unreachable {
            url: url.clone(),
            reason: err.to_string(),
        })?;
    let unreachable = |err: reqwest::Error| ApiError::Unreachable {
        url: url.clone(),
        reason: err.to_string(),
    };
    let response = http
        .put(url.clone())
        .bearer_auth(token.expose())
        .json(&json!({ "secrets": secrets }))
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        #[derive(Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            code: String,
            message: String,
        }
        let (code, message) = match serde_json::from_slice::<Body>(&bytes) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("unexpected_answer".to_owned(), status.to_string()),
        };
        return Err(ApiError::Status {
            method: Method::PUT,
            path,
            status,
            code,
            message,
        });
    }
    serde_json::from_slice(&bytes).map_err(|err| ApiError::BadBody {
        path,
        reason: err.to_string(),
    })
}

fn fingerprints(workspace: &Value) -> String {
    match workspace.get("secret_fingerprints") {
        Some(Value::Array(prints)) if !prints.is_empty() => prints
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_owned(),
    }
}

/// One workspace after create or rotate.
pub(super) fn describe(workspace: &Value, verb: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{verb} workspace {} (scheme {}) with {} secret(s): {}",
        field(workspace, "name"),
        field(workspace, "signature_scheme"),
        field(workspace, "secret_count"),
        fingerprints(workspace),
    );
    if workspace.get("encrypted_at_rest") == Some(&Value::Bool(false))
        && workspace.get("secret_count").and_then(Value::as_u64) > Some(0)
    {
        let _ = write!(
            out,
            "\nNote: this relay stores them unencrypted (it runs without --encryption-key)."
        );
    }
    let _ = write!(
        out,
        "\nCreate agents in it with `lobster-relay admin create-agent NAME --workspace {}`.",
        field(workspace, "name")
    );
    out
}

/// A table of workspaces, one per line.
pub(super) fn table(listed: &Value) -> String {
    let empty = Vec::new();
    let workspaces = listed
        .get("workspaces")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let titles = ["NAME", "SCHEME", "SECRETS", "SOURCE", "FINGERPRINTS"].map(str::to_owned);
    let rows = workspaces.iter().map(|w| {
        vec![
            field(w, "name"),
            field(w, "signature_scheme"),
            field(w, "secret_count"),
            field(w, "source"),
            fingerprints(w),
        ]
    });
    crate::ui::table(
        &std::iter::once(titles.to_vec())
            .chain(rows)
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_body_says_allow_unsigned_only_when_asked() {
        let body = create_body("acme", Scheme::Github, &[Secret::new("s1")], false);
        assert_eq!(
            body,
            json!({"name":"acme","signature_scheme":"github","secrets":["s1"]})
        );
        let body = create_body("dev", Scheme::None, &[], true);
        assert_eq!(body["allow_unsigned"], true);
    }

    #[test]
    fn renderings_show_counts_and_fingerprints_never_secrets() {
        let ws = json!({"name":"acme","signature_scheme":"github","secret_count":2,
            "secret_fingerprints":["sha256:aaaa1111","sha256:bbbb2222"],
            "source":"database","encrypted_at_rest":false});
        let text = describe(&ws, "Created");
        assert!(text.starts_with("Created workspace acme (scheme github) with 2 secret(s): sha256:aaaa1111 sha256:bbbb2222"), "{text}");
        assert!(text.contains("unencrypted"), "{text}");
        assert!(text.contains("--workspace acme"), "{text}");
        let listed = json!({"workspaces":[
            {"name":"default","signature_scheme":"standard-webhooks","secret_count":1,
             "secret_fingerprints":["sha256:cccc3333"],"source":"config"},
            ws]});
        let table = table(&listed);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NAME     SCHEME"), "{table}");
        assert!(lines[2].starts_with("acme     github"), "{table}");
    }
}
