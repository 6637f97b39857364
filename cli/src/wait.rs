//! `wait`: block until one matching event arrives, print it as one JSON line
//! (the `event` frame, as `listen --print` writes it), ack it, and exit 0;
//! exit 124 (as `timeout(1)` does) when `--timeout` passes first, 1 when
//! the relay cannot be reached.
//!
//! A dropped connection within the timeout is retried like `listen` does.
//! An event an earlier `wait` printed in the last ten minutes (its ack was
//! lost) is acked again without being printed (see [`crate::printed`]).
//! The event is acked only after its line reached stdout; when stdout is
//! closed the event stays unacked and the relay delivers it again. Other
//! events the relay sends along (up to its in-flight limit) are left
//! unanswered and go back to the queue when `wait` disconnects.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use lobster_shared::Secret;
use lobster_shared::wire::{AgentMessage, EventFrame, RelayMessage};
use reqwest::Url;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::exit::{ExitCode, Fatal, error_chain, is_broken_pipe};
use crate::glob::GlobList;
use crate::listen::backoff::Backoff;
use crate::listen::close::{SessionEnd, on_close};
use crate::listen::connect::{self, ConnectError, WsStream};
use crate::listen::session::{LIVENESS, check_protocol, handshake};
use crate::printed::Printed;
use crate::proxy::Proxy;
use crate::ui::{Ui, paint, print_data, short_duration};

/// How long to wait for the relay's side of the close after the ack.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Flags of `wait`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  # Block a script until the payment webhook arrives
  lobster-relay wait --events 'payment.*' --timeout 5m > event.json

  # Take the body out with jq
  lobster-relay wait --timeout 30s | jq -r .body

Exit codes: 0 an event was printed and acked, 124 none arrived within
--timeout, 1 the relay could not be reached (or another failure), 3 the
relay refused the API key.")]
pub struct WaitArgs {
    /// Only wait for events whose type matches one of these comma-separated globs.
    #[arg(long, value_name = "PATTERNS", value_parser = GlobList::parse)]
    pub events: Option<GlobList>,

    /// Give up after this long and exit 124 (`0` waits forever).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::duration::parse)]
    pub timeout: Duration,
}

/// Runs `wait`.
pub async fn run(ctx: &Context, args: WaitArgs) -> anyhow::Result<()> {
    let (key, _) = ctx.api_key().await?;
    let url = connect::connect_url(&ctx.relay, args.events.as_ref());
    let via = crate::proxy::env().tunnel_for(&url)?;
    let ui = &ctx.ui;
    let mut printed = Printed::load(&ctx.dir);
    let waiting = next_event(&url, &key, via.as_ref(), ui, &args, &printed);
    let found = if args.timeout.is_zero() {
        waiting.await
    } else {
        match timeout_at(Instant::now() + args.timeout, waiting).await {
            Ok(found) => found,
            Err(_) => {
                ui.stop_spin();
                return Err(Fatal {
                    code: ExitCode::Timeout,
                    message: format!(
                        "no event arrived within {}",
                        humantime::format_duration(args.timeout)
                    ),
                    next_step: Some(
                        "wait longer with --timeout (0 waits forever), or check with \
                         `lobster-relay status` that webhooks reach the agent's URL"
                            .into(),
                    ),
                }
                .into());
            }
        }
    };
    ui.stop_spin();
    let (mut ws, frame) = found?;
    deliver(&mut ws, &frame, ui, &mut printed).await
}

/// Prints the event, then acks it and closes the connection politely, so
/// the relay has the ack before it sees the close.
async fn deliver(
    ws: &mut WsStream,
    frame: &EventFrame,
    ui: &Ui,
    printed: &mut Printed,
) -> anyhow::Result<()> {
    let line = RelayMessage::Event(frame.clone()).to_json();
    if let Err(err) = print_data(line) {
        let err = anyhow::Error::new(err);
        if !is_broken_pipe(&err) {
            return Err(err.context("could not write the event to stdout; it was not acked"));
        }
        // Nobody reads stdout: leave the event for the relay to redeliver.
        return Err(err);
    }
    if let Err(err) = printed.record(&frame.id) {
        ui.detail(format!(
            "could not note {} as printed ({err:#}); if its ack is lost too, the next wait prints it again",
            frame.id
        ));
    }
    let ack = AgentMessage::Ack {
        id: frame.id.clone(),
    };
    ws.send(Message::text(ack.to_json())).await.context(
        "the event was printed but the ack could not be sent; the relay will deliver it again",
    )?;
    let _ = timeout(CLOSE_WAIT, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    ui.status(format!(
        "{} {} {} (acked)",
        paint("Received").green(),
        frame.event_type,
        frame.id
    ));
    Ok(())
}

/// Connects (again and again if need be) until a matching event arrives.
/// The first connection must work: a relay that cannot be reached at all
/// (a mistyped `--relay`, something else on that port) is exit 1 at once,
/// not a retry loop that ends as a timeout; once connected, a lost
/// connection is retried like `listen` does.
async fn next_event(
    url: &Url,
    key: &Secret,
    via: Option<&Proxy>,
    ui: &Ui,
    args: &WaitArgs,
    printed: &Printed,
) -> anyhow::Result<(WsStream, EventFrame)> {
    let filter = args.events.as_ref();
    let never = CancellationToken::new();
    let mut backoff = Backoff::new();
    let mut connected_once = false;
    loop {
        ui.spin("Connecting to the relay...");
        if let Some(proxy) = via {
            ui.detail(format!("connecting to {url} via proxy {proxy}"));
        }
        let end = match connect::connect(url, key, via).await {
            Err(ConnectError::Rejected(fatal)) => return Err(fatal.into()),
            Err(ConnectError::Failed(reason)) => SessionEnd::failed(reason),
            Ok(mut ws) => match handshake(&mut ws, &never).await {
                Err(end) => end,
                Ok(ready) => {
                    check_protocol(&ready)?;
                    backoff.reset();
                    connected_once = true;
                    let what = match filter {
                        Some(filter) => format!("an event matching {}", filter.to_query()),
                        None => "the next event".to_owned(),
                    };
                    let until = match args.timeout {
                        t if t.is_zero() => String::new(),
                        t => format!(" (up to {})", humantime::format_duration(t)),
                    };
                    ui.detail(format!("connected; webhook URL {}", ready.webhook_url));
                    ui.spin(format!("Waiting for {what}{until}..."));
                    match read_until_event(&mut ws, filter, printed, ui).await {
                        Ok(frame) => return Ok((ws, frame)),
                        Err(end) => end,
                    }
                }
            },
        };
        match end {
            SessionEnd::Fatal(err) => return Err(err),
            SessionEnd::Stopped => {}
            SessionEnd::Dropped { reason, .. } if !connected_once => {
                return Err(Fatal::relay_unreachable(url.as_str(), &reason, via).into());
            }
            SessionEnd::Dropped {
                reason, restarting, ..
            } => {
                if restarting {
                    backoff.relay_restarting();
                }
                let delay = backoff.next_delay();
                ui.status(format!(
                    "{} {reason}. Retrying in {}...",
                    paint("Lost the relay:").yellow(),
                    short_duration(delay)
                ));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Reads frames until an event that matches `filter`.
async fn read_until_event(
    ws: &mut WsStream,
    filter: Option<&GlobList>,
    printed: &Printed,
    ui: &Ui,
) -> Result<EventFrame, SessionEnd> {
    let mut last_error = None;
    loop {
        let next = match timeout(LIVENESS, ws.next()).await {
            Ok(next) => next,
            Err(_) => return Err(SessionEnd::failed("heard nothing from the relay for 60s")),
        };
        match next {
            None => return Err(SessionEnd::failed("the connection was closed")),
            Some(Err(err)) => return Err(SessionEnd::failed(error_chain(&err))),
            Some(Ok(Message::Close(frame))) => {
                return Err(on_close(frame.as_ref(), last_error.as_ref()));
            }
            Some(Ok(Message::Text(text))) => match RelayMessage::from_json(&text) {
                Ok(RelayMessage::Event(frame)) if !frame.replay && printed.contains(&frame.id) => {
                    ui.detail(format!(
                        "{} was printed by an earlier wait; acking it again",
                        frame.id
                    ));
                    let ack = AgentMessage::Ack { id: frame.id };
                    if let Err(err) = ws.send(Message::text(ack.to_json())).await {
                        return Err(SessionEnd::failed(error_chain(&err)));
                    }
                }
                Ok(RelayMessage::Event(frame))
                    if filter.is_none_or(|f| f.matches(&frame.event_type)) =>
                {
                    return Ok(frame);
                }
                Ok(RelayMessage::Error(error)) => last_error = Some(error),
                _ => {}
            },
            Some(Ok(_)) => {}
        }
    }
}
