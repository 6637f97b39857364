//! Human renderings of admin API answers, read as the types of
//! [`lobster_shared::api`] (a field the relay adds later is ignored; a
//! missing one is an error naming it).

use std::fmt::Write as _;

use lobster_shared::api::{CreatedAgent, ListedAgent};
use reqwest::Url;

use crate::ui::{printable, table};

/// The answer to `POST /api/v1/admin/agents`, with the key shown once and
/// the `login` and `listen` lines to paste.
pub fn created_agent(created: &CreatedAgent, relay: &Url) -> String {
    let relay = relay.as_str().trim_end_matches('/');
    let api_key = printable(&created.api_key);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Created agent {} ({}) in workspace {}.",
        printable(&created.name),
        created.agent_id,
        created.workspace,
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "API key (shown only once: store it now, it cannot be shown again):"
    );
    let _ = writeln!(out, "  {api_key}");
    let _ = writeln!(out);
    let _ = writeln!(out, "Webhook URL (give this to the sender):");
    let _ = writeln!(out, "  {}", printable(&created.webhook_url));
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

/// A plain-text table of agents, one per line, columns padded with spaces.
pub fn agent_table(agents: &[ListedAgent]) -> String {
    let titles = [
        "AGENT ID",
        "NAME",
        "WORKSPACE",
        "ONLINE",
        "PENDING",
        "LAST SEEN",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows = agents.iter().map(|agent| {
        vec![
            agent.agent_id.clone(),
            printable(&agent.name).into_owned(),
            agent.workspace.clone(),
            agent.online_sessions.to_string(),
            agent.pending_events.to_string(),
            agent.last_seen.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    table(&std::iter::once(titles).chain(rows).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A listed agent from the fields a test cares about.
    fn listed(fields: Value) -> ListedAgent {
        let mut agent = json!({"agent_id": "agt_1", "name": "a", "workspace": "default",
            "relay_id": "rly_1", "webhook_url": "http://x", "created_at": "2026-11-28T00:00:00Z",
            "last_seen": null, "online_sessions": 0, "session_transports": [],
            "pending_events": 0});
        agent
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(agent).unwrap()
    }

    #[test]
    fn a_created_agent_shows_the_key_once_and_a_listen_line() {
        let created: CreatedAgent = serde_json::from_value(
            json!({"agent_id":"agt_1","name":"laptop","workspace":"default",
            "relay_id":"r1","api_key":"lr_secret","webhook_url":"http://x/api/v1/webhook/r1"}),
        )
        .unwrap();
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
    fn tables_align_columns_and_fill_gaps() {
        let agents = [
            listed(
                json!({"agent_id":"agt_1","name":"laptop","workspace":"default",
                   "online_sessions":2,"pending_events":0,"last_seen":null}),
            ),
            listed(
                json!({"agent_id":"agt_22","name":"ci","workspace":"default",
                   "online_sessions":0,"pending_events":17,
                   "last_seen":"2026-11-28T12:00:00Z"}),
            ),
        ];
        let table = agent_table(&agents);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("AGENT ID  NAME    WORKSPACE  ONLINE  PENDING  LAST SEEN"));
        assert!(lines[1].starts_with("agt_1     laptop  default    2       0        -"));
        assert!(lines[2].ends_with("17       2026-11-28T12:00:00Z"));
    }
}
