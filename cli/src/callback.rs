//! `callback set URL [URL...] | show | clear`: push delivery of this
//! agent's events to URLs of its own, tried in order (`docs/api-reference.md`, "Push delivery to a
//! callback URL").
//!
//! `set` prints the signing secret on stdout, once (the relay never shows
//! it again), so `secret=$(lobster-relay callback set URL)` keeps it; what
//! people read goes to stderr.

use clap::Subcommand;
use lobster_shared::api::{CallbackSet, CallbackShown, SetCallback};
use serde_json::Value;

use crate::api::typed;
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
  lobster-relay callback set https://eu.example.com/hooks https://us.example.com/hooks

With several URLs (at most 5), each event goes to the first; when it does
not answer 2xx, to the next, and so on: the first 2xx acks the event.

Each event is POSTed with the sender's body and headers, signed with
Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)
by the secret printed here. A 2xx answer acks the event; anything else is
retried. While a session of this agent (listen, an SDK) is connected, it
gets the events instead. Setting the URL again issues a new secret.")]
    Set {
        /// https:// URLs the relay can reach, tried in this order.
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
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
        CallbackCommand::Set { mut urls } => {
            // One URL as `url`: relays before URL lists understand it.
            let request = if urls.len() == 1 {
                SetCallback {
                    url: urls.pop(),
                    urls: None,
                }
            } else {
                SetCallback {
                    url: None,
                    urls: Some(urls),
                }
            };
            let answer = client
                .put(&CALLBACK, &serde_json::to_value(&request)?)
                .await?;
            if ctx.global.json {
                return print_json(&answer);
            }
            let set: CallbackSet = typed(&CALLBACK.join("/"), answer)?;
            let secret = set.signing_secret;
            let urls = if set.urls.is_empty() {
                vec![set.url]
            } else {
                set.urls
            };
            ctx.ui.status(match urls.as_slice() {
                [one] => format!(
                    "Callback set: events go to {one} while no session of this agent is connected."
                ),
                many => format!(
                    "Callback set: events go to {}, tried in that order, while no session of this agent is connected.",
                    many.join(", then ")
                ),
            });
            ctx.ui.always(
                "Signing secret (shown once, keep it; verify requests with any Standard Webhooks library):",
            );
            print_data(&secret)?;
            Ok(())
        }
        CallbackCommand::Show => {
            let shown = client.get(&CALLBACK).await?;
            if ctx.global.json {
                return print_json(&shown);
            }
            print_data(render(&typed(&CALLBACK.join("/"), shown)?))?;
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
fn render(shown: &CallbackShown) -> String {
    let state = if shown.pushing {
        "pushing events now"
    } else if shown.online_sessions > 0 {
        "paused: a session of this agent is connected and gets the events"
    } else if shown.connected_elsewhere {
        "paused: a session of this agent is connected to another relay instance and gets the events"
    } else {
        "not pushing on the instance that answered"
    };
    let urls = match shown.urls.as_slice() {
        [] => format!("url:      {}", shown.url),
        [one] => format!("url:      {one}"),
        many => many
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let label = if i == 0 { "urls:" } else { "" };
                format!("{label:<10}{}. {url}", i + 1)
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    format!(
        "{urls}\nstate:    {state}\nsigned:   {} (webhook-id, webhook-timestamp, webhook-signature)\nupdated:  {}",
        shown.signature_scheme,
        local_time(&shown.updated_at),
    )
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    print_data(serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown() -> CallbackShown {
        CallbackShown {
            url: "https://app.example.com/hooks".into(),
            urls: vec!["https://app.example.com/hooks".into()],
            signature_scheme: "standard-webhooks".into(),
            created_at: "2026-12-04T10:00:00.000Z".into(),
            updated_at: "2026-12-04T10:00:00.000Z".into(),
            pushing: true,
            online_sessions: 0,
            connected_elsewhere: false,
        }
    }

    #[test]
    fn show_says_whether_it_pushes_and_why_not() {
        let mut shown = shown();
        let text = render(&shown);
        assert!(
            text.contains("url:      https://app.example.com/hooks"),
            "{text}"
        );
        assert!(text.contains("pushing events now"), "{text}");
        shown.pushing = false;
        shown.online_sessions = 1;
        assert!(render(&shown).contains("a session of this agent is connected"));
    }

    #[test]
    fn show_numbers_several_urls_in_their_order() {
        let mut shown = shown();
        shown.urls.push("https://standby.example.com/hooks".into());
        let text = render(&shown);
        assert!(
            text.starts_with(
                "urls:     1. https://app.example.com/hooks\n          2. https://standby.example.com/hooks\n"
            ),
            "{text}"
        );
    }
}
