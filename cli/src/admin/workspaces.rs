//! `admin create-workspace | list-workspaces | rotate-workspace-secrets`.
//!
//! Secrets go to the relay and never come back: answers show how many a
//! workspace holds and a short fingerprint of each.

use std::fmt::Write as _;

use lobster_shared::Secret;
use lobster_shared::api::{CreateWorkspace, ReplaceSecrets, Workspace, WorkspaceList};
use lobster_shared::signature::Scheme;
use serde_json::Value;

pub(super) const WORKSPACES: [&str; 4] = ["api", "v1", "admin", "workspaces"];

/// The body of `POST /api/v1/admin/workspaces`.
pub(super) fn create_body(
    name: &str,
    scheme: Scheme,
    secrets: &[Secret],
    allow_unsigned: bool,
) -> CreateWorkspace {
    CreateWorkspace {
        name: name.to_owned(),
        signature_scheme: Some(scheme.as_str().to_owned()),
        secrets: secrets.iter().map(|s| s.expose().to_owned()).collect(),
        allow_unsigned,
    }
}

/// The path of `PUT /api/v1/admin/workspaces/{name}/secrets`.
pub(super) fn secrets_path(name: &str) -> Vec<&str> {
    let mut segments = WORKSPACES.to_vec();
    segments.extend([name, "secrets"]);
    segments
}

/// The body of that PUT.
pub(super) fn replace_body(secrets: &[Secret]) -> ReplaceSecrets {
    ReplaceSecrets {
        secrets: secrets.iter().map(|s| s.expose().to_owned()).collect(),
    }
}

pub(super) fn to_value(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).expect("request bodies serialize")
}

fn fingerprints(workspace: &Workspace) -> String {
    if workspace.secret_fingerprints.is_empty() {
        "-".to_owned()
    } else {
        workspace.secret_fingerprints.join(" ")
    }
}

/// One workspace after create or rotate.
pub(super) fn describe(workspace: &Workspace, verb: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{verb} workspace {} (scheme {}) with {} secret(s): {}",
        workspace.name,
        workspace.signature_scheme,
        workspace.secret_count,
        fingerprints(workspace),
    );
    if workspace.encrypted_at_rest == Some(false) && workspace.secret_count > 0 {
        let _ = write!(
            out,
            "\nNote: this relay stores them unencrypted (it runs without --encryption-key)."
        );
    }
    let _ = write!(
        out,
        "\nCreate agents in it with `lobster-relay admin create-agent NAME --workspace {}`.",
        workspace.name
    );
    out
}

/// A table of workspaces, one per line.
pub(super) fn table(listed: &WorkspaceList) -> String {
    let titles = ["NAME", "SCHEME", "SECRETS", "SOURCE", "FINGERPRINTS"].map(str::to_owned);
    let rows = listed.workspaces.iter().map(|w| {
        vec![
            w.name.clone(),
            w.signature_scheme.clone(),
            w.secret_count.to_string(),
            w.source.clone(),
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

    use serde_json::json;

    #[test]
    fn the_create_body_says_allow_unsigned_only_when_asked() {
        let body = create_body("acme", Scheme::Github, &[Secret::new("s1")], false);
        assert_eq!(
            to_value(&body),
            json!({"name":"acme","signature_scheme":"github","secrets":["s1"]})
        );
        let body = create_body("dev", Scheme::None, &[], true);
        assert_eq!(to_value(&body)["allow_unsigned"], true);
    }

    #[test]
    fn renderings_show_counts_and_fingerprints_never_secrets() {
        let ws: Workspace = serde_json::from_value(
            json!({"name":"acme","signature_scheme":"github","secret_count":2,
            "secret_fingerprints":["sha256:aaaa1111","sha256:bbbb2222"],
            "source":"database","created_at":"2026-12-04T00:00:00.000Z","encrypted_at_rest":false}),
        )
        .unwrap();
        let text = describe(&ws, "Created");
        assert!(text.starts_with("Created workspace acme (scheme github) with 2 secret(s): sha256:aaaa1111 sha256:bbbb2222"), "{text}");
        assert!(text.contains("unencrypted"), "{text}");
        assert!(text.contains("--workspace acme"), "{text}");
        let default: Workspace = serde_json::from_value(json!(
            {"name":"default","signature_scheme":"standard-webhooks","secret_count":1,
             "secret_fingerprints":["sha256:cccc3333"],"source":"config",
             "created_at":null,"encrypted_at_rest":null}))
        .unwrap();
        let listed = WorkspaceList {
            workspaces: vec![default, ws],
        };
        let table = table(&listed);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NAME     SCHEME"), "{table}");
        assert!(lines[2].starts_with("acme     github"), "{table}");
    }
}
