//! `status`: who am I on which relay, where the key came from, what waits.

use std::fmt::Write as _;

use lobster_shared::api::AgentMe;
use serde_json::{Value, json};

use crate::context::Context;
use crate::credentials::KeySource;
use crate::ui::print_data;

/// Runs `status`.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let (client, source) = ctx.agent_client().await?;
    ctx.ui.spin(format!("Asking {}...", ctx.account()));
    let me = client
        .get_as::<AgentMe>(&["api", "v1", "agent", "me"])
        .await;
    ctx.ui.stop_spin();
    let me = me?;
    let out = if ctx.global.json {
        serde_json::to_string_pretty(&as_json(ctx.account(), &me, &source))?
    } else {
        render(ctx.account(), &me, &source)
    };
    print_data(out)?;
    Ok(())
}

/// The `--json` answer: the relay's `me` plus the relay and key source.
fn as_json(relay: &str, me: &AgentMe, source: &KeySource) -> Value {
    let mut out = json!({
        "relay": relay,
        "agent_id": me.agent_id,
        "name": me.name,
        "workspace": me.workspace,
        "relay_id": me.relay_id,
        "webhook_url": me.webhook_url,
        "pending_events": me.pending_events,
        "online_sessions": me.online_sessions,
        "key_source": source.name(),
    });
    if let KeySource::File(path) = source {
        out["credentials_file"] = json!(path.display().to_string());
    }
    out
}

/// The human rendering, one `label: value` per line.
fn render(relay: &str, me: &AgentMe, source: &KeySource) -> String {
    let agent = format!("{} ({}, workspace {})", me.name, me.agent_id, me.workspace);
    let rows = [
        ("Relay", relay.to_owned()),
        ("Agent", agent),
        ("Webhook URL", me.webhook_url.clone()),
        ("API key from", source.to_string()),
        ("Pending events", me.pending_events.to_string()),
        ("Online sessions", me.online_sessions.to_string()),
    ];
    let mut out = String::new();
    for (label, value) in rows {
        let _ = writeln!(out, "{:<16} {value}", format!("{label}:"));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> AgentMe {
        serde_json::from_value(json!({
            "agent_id": "agt_1", "name": "laptop", "workspace": "default",
            "relay_id": "rly_1", "webhook_url": "http://r/api/v1/webhook/rly_1",
            "pending_events": 3, "online_sessions": 1
        }))
        .unwrap()
    }

    #[test]
    fn json_has_every_field_and_the_key_source() {
        let path = std::path::PathBuf::from("/c/credentials.toml");
        let out = as_json("http://r", &me(), &KeySource::File(path));
        for field in [
            "relay",
            "agent_id",
            "name",
            "workspace",
            "relay_id",
            "webhook_url",
            "pending_events",
            "online_sessions",
            "key_source",
        ] {
            assert!(!out[field].is_null(), "{field} missing: {out}");
        }
        assert_eq!(out["key_source"], "file");
        assert_eq!(out["credentials_file"], "/c/credentials.toml");
        assert_eq!(out["pending_events"], 3);
    }

    #[test]
    fn the_rendering_lines_up() {
        let text = render("http://r", &me(), &KeySource::Keyring);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "Relay:           http://r");
        assert!(lines[1].contains("laptop (agt_1, workspace default)"));
        assert!(lines[3].contains("OS keyring"));
        assert_eq!(lines[4], "Pending events:  3");
    }
}
