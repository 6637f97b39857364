//! Human renderings of admin API answers.
//!
//! The answers are read as loose JSON, not strict structs: a field the relay
//! adds later must not break an older CLI, and a missing one shows as `-`.

use std::fmt::Write as _;

use reqwest::Url;
use serde_json::Value;

use crate::ui::{field, table};

/// The answer to `POST /api/v1/admin/agents`, with the key shown once and
/// the `login` and `listen` lines to paste.
pub fn created_agent(created: &Value, relay: &Url) -> String {
    let relay = relay.as_str().trim_end_matches('/');
    let api_key = field(created, "api_key");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Created agent {} ({}) in workspace {}.",
        field(created, "name"),
        field(created, "agent_id"),
        field(created, "workspace"),
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "API key (shown only once: store it now, it cannot be shown again):"
    );
    let _ = writeln!(out, "  {api_key}");
    let _ = writeln!(out);
    let _ = writeln!(out, "Webhook URL (give this to the sender):");
    let _ = writeln!(out, "  {}", field(created, "webhook_url"));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Start receiving (login asks for the key and keeps it):"
    );
    let _ = writeln!(out, "  lobster-relay login --relay {relay}");
    let _ = writeln!(out, "  lobster-relay listen --print");
    let _ = writeln!(out, "or, without storing the key:");
    let _ = write!(
        out,
        "  lobster-relay listen --relay {relay} --api-key {api_key} --print"
    );
    out
}

/// The agents in a `GET /api/v1/admin/agents` answer, whether it is a bare
/// array or `{"agents": [...]}`.
pub fn agent_list(listed: &Value) -> &[Value] {
    match listed {
        Value::Array(agents) => agents,
        Value::Object(_) => match listed.get("agents") {
            Some(Value::Array(agents)) => agents,
            _ => &[],
        },
        _ => &[],
    }
}

const COLUMNS: [(&str, &str); 6] = [
    ("AGENT ID", "agent_id"),
    ("NAME", "name"),
    ("WORKSPACE", "workspace"),
    ("ONLINE", "online_sessions"),
    ("PENDING", "pending_events"),
    ("LAST SEEN", "last_seen"),
];

/// A plain-text table of agents, one per line, columns padded with spaces.
pub fn agent_table(agents: &[Value]) -> String {
    let titles = COLUMNS
        .iter()
        .map(|(title, _)| (*title).to_owned())
        .collect();
    let rows = agents
        .iter()
        .map(|agent| COLUMNS.iter().map(|(_, key)| field(agent, key)).collect());
    table(&std::iter::once(titles).chain(rows).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_created_agent_shows_the_key_once_and_a_listen_line() {
        let created = json!({"agent_id":"agt_1","name":"laptop","workspace":"default",
            "relay_id":"r1","api_key":"lr_secret","webhook_url":"http://x/api/v1/webhook/r1"});
        let relay = Url::parse("http://127.0.0.1:8080").unwrap();
        let text = created_agent(&created, &relay);
        assert!(text.contains("shown only once"));
        assert_eq!(
            text.matches("lr_secret").count(),
            2,
            "key line and listen line"
        );
        assert!(text.contains("http://x/api/v1/webhook/r1"));
        assert!(text.contains("lobster-relay login --relay http://127.0.0.1:8080\n"));
        assert!(text.ends_with(
            "lobster-relay listen --relay http://127.0.0.1:8080 --api-key lr_secret --print"
        ));
    }

    #[test]
    fn agent_lists_come_bare_or_wrapped() {
        let one = json!([{"agent_id":"a"}]);
        assert_eq!(agent_list(&one).len(), 1);
        let wrapped = json!({"agents":[{"agent_id":"a"},{"agent_id":"b"}]});
        assert_eq!(agent_list(&wrapped).len(), 2);
        assert!(agent_list(&json!({"x":1})).is_empty());
    }

    #[test]
    fn tables_align_columns_and_fill_gaps() {
        let agents = [
            json!({"agent_id":"agt_1","name":"laptop","workspace":"default",
                   "online_sessions":2,"pending_events":0,"last_seen":null}),
            json!({"agent_id":"agt_22","name":"ci","workspace":"default",
                   "online_sessions":0,"pending_events":17,
                   "last_seen":"2026-11-28T12:00:00Z"}),
        ];
        let table = agent_table(&agents);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("AGENT ID  NAME    WORKSPACE  ONLINE  PENDING  LAST SEEN"));
        assert!(lines[1].starts_with("agt_1     laptop  default    2       0        -"));
        assert!(lines[2].ends_with("17       2026-11-28T12:00:00Z"));
    }
}
