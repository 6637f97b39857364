//! `events list | show ID | replay ID` and `trigger`: this agent's events
//! through the agent API (`docs/api-reference.md`, "Agent API").
//!
//! With `--json` each command prints the relay's answer as it came; without,
//! a rendering for people (see `render`).

mod render;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Subcommand};
use lobster_shared::api::{Accepted, BodyEncoding, EventDetail, EventPage, ReplayedFailed};
use serde_json::{Value, json};

use crate::api::typed;
use crate::context::Context;
use crate::ui::{print_data, print_raw};

const STATUSES: [&str; 6] = [
    "pending",
    "delivering",
    "delivered",
    "failed",
    "expired",
    "skipped",
];

/// The `events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    #[command(after_help = "\
Examples:
  lobster-relay events list
  lobster-relay events list --status failed --limit 10
  lobster-relay events list --json | jq -r '.events[].id'")]
    List(ListArgs),

    /// Show one event: headers, body and every delivery attempt.
    #[command(after_help = "\
Examples:
  lobster-relay events show evt_01JD...
  lobster-relay events show evt_01JD... --body > body.json")]
    Show {
        /// The event id (`evt_...`), as `events list` or a listener printed it.
        id: String,

        /// Print only the raw body, byte for byte, to stdout.
        #[arg(long, conflicts_with = "json")]
        body: bool,

        /// Re-indent a JSON body for reading (key order kept); without it
        /// the body is shown as received.
        #[arg(long, conflicts_with_all = ["json", "body"])]
        pretty: bool,
    },

    /// Queue an event for delivery again (same id, the attempt count goes
    /// on), or with --failed every failed event (the dead letters).
    #[command(after_help = "\
Examples:
  lobster-relay events replay evt_01JD...
  lobster-relay events replay --failed
  lobster-relay events replay --failed --since 2h --type 'invoice.*'")]
    Replay {
        /// The event id (`evt_...`).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<String>,

        /// Replay every failed event of this agent (up to 1000 a run).
        #[arg(long)]
        failed: bool,

        /// With --failed: only events received since then, a duration
        /// back from now (`2h`, `1d`) or an RFC 3339 time.
        #[arg(long, requires = "failed", value_name = "WHEN")]
        since: Option<String>,

        /// With --failed: only events whose type matches this glob.
        #[arg(long = "type", requires = "failed", value_name = "GLOB")]
        event_type: Option<String>,
    },
}

/// Flags of `events list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only events with this status.
    #[arg(long, value_parser = STATUSES)]
    pub status: Option<String>,

    /// How many events to list (1 to 500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,

    /// Only events older than this id (the `next` of a previous page).
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
}

/// Flags of `trigger`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  lobster-relay trigger
  lobster-relay trigger message.received --data '{\"text\":\"hello\"}'

The relay stores {\"type\": TYPE, \"id\": ID, \"data\": DATA, \"test\": true} as
the event's body and queues it, so a running `listen` receives it at once.")]
pub struct TriggerArgs {
    /// The event type [default: test.event].
    #[arg(value_name = "EVENT_TYPE")]
    pub event_type: Option<String>,

    /// JSON for the event's `data` field.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub data: Option<Value>,
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))
}

const EVENTS: [&str; 4] = ["api", "v1", "agent", "events"];

/// Runs one `events` subcommand.
pub async fn run(ctx: &Context, command: EventsCommand) -> anyhow::Result<()> {
    let (client, _) = ctx.agent_client().await?;
    match command {
        EventsCommand::List(args) => {
            let mut query = vec![format!("limit={}", args.limit)];
            if let Some(status) = &args.status {
                query.push(format!("status={status}"));
            }
            if let Some(before) = &args.before {
                query.push(format!("before={}", encode(before)));
            }
            let listed = client.get_query(&EVENTS, &query.join("&")).await?;
            if ctx.global.json {
                return print_json(&listed);
            }
            let page: EventPage = typed(&EVENTS.join("/"), listed)?;
            if page.events.is_empty() {
                ctx.ui.status(match &args.status {
                    Some(status) => format!("No {status} events."),
                    None => "No events yet. Send one with `lobster-relay trigger`.".to_owned(),
                });
                return Ok(());
            }
            let table = render::event_table(&page.events);
            // On a terminal, each row fits its width; piped, rows stay whole.
            let table = match console::Term::stdout().size_checked() {
                Some((_, columns)) => render::fit_width(&table, usize::from(columns)),
                None => table,
            };
            print_data(table)?;
            if let Some(next) = &page.next {
                ctx.ui.status(format!(
                    "More: lobster-relay events list --limit {} --before {next}",
                    args.limit
                ));
            }
            Ok(())
        }
        EventsCommand::Show { id, body, pretty } => {
            let mut path = EVENTS.to_vec();
            path.push(&id);
            let answer = client.get(&path).await?;
            if ctx.global.json && !body {
                return print_json(&answer);
            }
            let event: EventDetail = typed(&path.join("/"), answer)?;
            if body {
                return print_raw(&raw_body(&event)?).map_err(Into::into);
            }
            print_data(render::event_detail(&event, pretty))?;
            Ok(())
        }
        EventsCommand::Replay {
            id: None,
            since,
            event_type,
            ..
        } => {
            let mut path = EVENTS.to_vec();
            path.push("replay-failed");
            let mut filter = json!({});
            if let Some(since) = since {
                filter["since"] = json!(since);
            }
            if let Some(event_type) = event_type {
                filter["type"] = json!(event_type);
            }
            let answer = client.post(&path, &filter).await?;
            if ctx.global.json {
                return print_json(&answer);
            }
            let ReplayedFailed {
                matched,
                queued,
                truncated,
            } = typed(&path.join("/"), answer)?;
            print_data(queued.to_string())?;
            ctx.ui.status(format!(
                "Queued {queued} of {matched} failed event(s) for delivery again.{}",
                if truncated {
                    " More matched: run it again for the rest."
                } else {
                    ""
                }
            ));
            Ok(())
        }
        EventsCommand::Replay { id: Some(id), .. } => {
            let mut path = EVENTS.to_vec();
            path.extend([id.as_str(), "replay"]);
            let answer = client.post(&path, &json!({})).await?;
            if ctx.global.json {
                return print_json(&answer);
            }
            ctx.ui.status(format!(
                "Queued {id} for delivery again; a running listener receives it now."
            ));
            Ok(())
        }
    }
}

/// Runs `trigger`.
pub async fn trigger(ctx: &Context, args: TriggerArgs) -> anyhow::Result<()> {
    let (client, _) = ctx.agent_client().await?;
    let event_type = args.event_type.unwrap_or_else(|| "test.event".to_owned());
    let body = json!({
        "event_type": event_type,
        "data": args.data.unwrap_or_else(|| json!({})),
    });
    let path = ["api", "v1", "agent", "test-event"];
    let answer = client.post(&path, &body).await?;
    if ctx.global.json {
        return print_json(&answer);
    }
    let Accepted { id, .. } = typed(&path.join("/"), answer)?;
    print_data(&id)?;
    ctx.ui.status(format!(
        "Triggered {event_type} event {id}; a running listener receives it now."
    ));
    Ok(())
}

/// The event's body as the relay stored it, decoded from `body_encoding`.
fn raw_body(event: &EventDetail) -> anyhow::Result<Vec<u8>> {
    match event.body_encoding {
        BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(&event.body)
            .context("the relay sent a body that is not valid base64"),
        BodyEncoding::Utf8 => Ok(event.body.as_bytes().to_vec()),
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    print_data(serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_by_their_encoding() {
        let event = |body: &str, encoding: &str| {
            typed::<EventDetail>(
                "api/v1/agent/events/evt_1",
                json!({"id": "evt_1", "event_type": "x", "status": "pending",
                       "received_at": "2026-11-28T12:00:01Z", "attempts": 0, "headers": [],
                       "body": body, "body_encoding": encoding, "attempt_history": []}),
            )
        };
        assert_eq!(raw_body(&event("aGk=", "base64").unwrap()).unwrap(), b"hi");
        let utf8 = event("{\"a\":1}", "utf8").unwrap();
        assert_eq!(raw_body(&utf8).unwrap(), b"{\"a\":1}");
        assert!(raw_body(&event("!!", "base64").unwrap()).is_err());
        // An encoding this version does not know fails as an answer it
        // cannot read, naming the field's value.
        let unknown = event("x", "rot13").unwrap_err().to_string();
        assert!(unknown.contains("rot13"), "{unknown}");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(encode("evt_01AB"), "evt_01AB");
        assert_eq!(encode("a&b=c d"), "a%26b%3Dc%20d");
    }

    #[test]
    fn data_must_be_json() {
        assert!(parse_json("{\"a\":1}").is_ok());
        assert!(parse_json("{a:1}").unwrap_err().starts_with("not JSON"));
    }
}
