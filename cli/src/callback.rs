//! `callback set URL | show | clear`: push delivery of this agent's events
//! to a URL of its own (`docs/api-reference.md`, "Push delivery to a
//! callback URL").
//!
//! `set` prints the signing secret on stdout, once (the relay never shows
//! it again), so `secret=$(lobster-relay callback set URL)` keeps it; what
//! people read goes to stderr.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::context::Context;
use crate::ui::{local_time, print_data};

/// The `callback` subcommands.
#[derive(Debug, Subcommand)]
pub enum CallbackCommand {
    /// POST this agent's events to URL while no `listen` is connected;
    /// prints a new signing secret, once.
    #[command(after_help = "\
Examples:
  lobster-relay callback set https://app.example.com/hooks
  secret=$(lobster-relay callback set https://app.example.com/hooks)

Each event is POSTed with the sender's body and headers, signed with
Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)
by the secret printed here. A 2xx answer acks the event; anything else is
retried. While a session of this agent (listen, an SDK) is connected, it
gets the events instead. Setting the URL again issues a new secret.")]
    Set {
        /// An https:// URL the relay can reach.
        url: String,
    },

    /// Show the callback URL and whether the relay is pushing to it now.
    #[command(after_help = "\
Examples:
  lobster-relay callback show
  lobster-relay callback show --json | jq -r .url")]
    Show,

    /// Stop push delivery; events wait for a session again.
    #[command(after_help = "\
Examples:
  lobster-relay callback clear")]
    Clear,
}

const CALLBACK: [&str; 4] = ["api", "v1", "agent", "callback"];

/// Runs one `callback` subcommand.
pub async fn run(ctx: &Context, command: CallbackCommand) -> anyhow::Result<()> {
    let (client, _) = ctx.agent_client().await?;
    match command {
        CallbackCommand::Set { url } => {
            let answer = client.put(&CALLBACK, &json!({ "url": url })).await?;
            if ctx.global.json {
                return print_json(&answer);
            }
            let secret = answer["signing_secret"].as_str().unwrap_or_default();
            ctx.ui.status(format!(
                "Callback set: events go to {} while no session of this agent is connected.",
                answer["url"].as_str().unwrap_or(&url)
            ));
            ctx.ui.always(
                "Signing secret (shown once, keep it; verify requests with any Standard Webhooks library):",
            );
            print_data(secret)?;
            Ok(())
        }
        CallbackCommand::Show => {
            let shown = client.get(&CALLBACK).await?;
            if ctx.global.json {
                return print_json(&shown);
            }
            print_data(render(&shown))?;
            Ok(())
        }
        CallbackCommand::Clear => {
            client.delete(&CALLBACK).await?;
            ctx.ui
                .status("Callback cleared: events wait for a session (listen) again.");
            Ok(())
        }
    }
}

/// The callback as people read it.
fn render(shown: &Value) -> String {
    let text = |name: &str| shown[name].as_str().unwrap_or("-").to_owned();
    let state = if shown["pushing"] == true {
        "pushing events now".to_owned()
    } else if shown["online_sessions"].as_u64().unwrap_or(0) > 0 {
        "paused: a session of this agent is connected and gets the events".to_owned()
    } else {
        "not pushing on the instance that answered".to_owned()
    };
    format!(
        "url:      {}\nstate:    {state}\nsigned:   {} (webhook-id, webhook-timestamp, webhook-signature)\nupdated:  {}",
        text("url"),
        text("signature_scheme"),
        local_time(&text("updated_at")),
    )
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    print_data(serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_says_whether_it_pushes_and_why_not() {
        let mut shown = json!({
            "url": "https://app.example.com/hooks",
            "signature_scheme": "standard-webhooks",
            "updated_at": "2026-12-04T10:00:00.000Z",
            "pushing": true,
            "online_sessions": 0,
        });
        let text = render(&shown);
        assert!(text.contains("https://app.example.com/hooks"), "{text}");
        assert!(text.contains("pushing events now"), "{text}");
        shown["pushing"] = json!(false);
        shown["online_sessions"] = json!(1);
        assert!(render(&shown).contains("a session of this agent is connected"));
    }
}
