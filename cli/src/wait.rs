//! `wait`: block until one matching event arrives, print it as one JSON line
//! (the `event` frame, as `listen --print` writes it), ack it, and exit 0;
//! exit 124 (as `timeout(1)` does) when `--timeout` passes first, 1 when
//! the relay cannot be reached.
//!
//! It reaches the relay as `listen` does (`--transport`, the WebSocket
//! else SSE else long-poll); a dropped connection within the timeout is
//! retried like `listen` does.
//! An event an earlier `wait` printed in the last ten minutes (its ack was
//! lost) is acked again without being printed (see [`crate::printed`]).
//! The event is acked only after its line reached stdout; when stdout is
//! closed the event stays unacked and the relay delivers it again. Other
//! events the relay sends along (up to its in-flight limit) are left
//! unanswered and go back to the queue when `wait` disconnects.

use std::time::Duration;

use clap::Args;
use lobster_shared::wire::{AgentMessage, EventFrame, RelayMessage};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::agent::check_protocol;
use crate::agent::close::{SessionEnd, on_close};
use crate::agent::reconnect;
use crate::agent::transport::{Connector, EventSource, Incoming, LIVENESS, Link, TransportChoice};
use crate::agent::writer::Outgoing;
use crate::context::Context;
use crate::exit::{ExitCode, Fatal, is_broken_pipe};
use crate::glob::GlobList;
use crate::printed::Printed;
use crate::ui::{Ui, paint, print_data};

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

    /// How to reach the relay: auto tries the WebSocket, then Server-Sent
    /// Events, then long-poll; ws, sse and poll use only that one.
    #[arg(
        long,
        value_name = "TRANSPORT",
        env = "LOBSTER_RELAY_TRANSPORT",
        default_value = "auto"
    )]
    pub transport: TransportChoice,
}

/// An open session: what the relay sends, and the task that sends acks.
struct Session {
    source: Box<dyn EventSource>,
    outgoing: mpsc::Sender<Outgoing>,
    sink: JoinHandle<Result<(), String>>,
}

impl Session {
    fn start(link: Link) -> Self {
        let (outgoing, outgoing_rx) = mpsc::channel(16);
        let sink = tokio::spawn(link.sink.run(outgoing_rx, CancellationToken::new()));
        Self {
            source: link.source,
            outgoing,
            sink,
        }
    }

    async fn ack(&self, id: &str) -> Result<(), SessionEnd> {
        let ack = Outgoing::Reply(AgentMessage::Ack { id: id.to_owned() });
        self.outgoing
            .send(ack)
            .await
            .map_err(|_| SessionEnd::failed("the connection was lost"))
    }
}

/// Runs `wait`.
pub async fn run(ctx: &Context, args: WaitArgs) -> anyhow::Result<()> {
    let (key, _) = ctx.api_key().await?;
    // A poll asks for one event: more would sit leased to a `wait` that
    // handles only one.
    let connector = Connector::new(args.transport, &ctx.relay, &key, args.events.as_ref(), 1)?;
    let ui = &ctx.ui;
    let mut printed = Printed::load(&ctx.dir);
    let waiting = next_event(&connector, ui, &args, &printed);
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
    let (session, frame) = found?;
    deliver(session, &frame, ui, &mut printed).await
}

/// Prints the event, then acks it and ends the session politely, so the
/// relay has the ack before it sees the end.
async fn deliver(
    mut session: Session,
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
    let not_sent =
        "the event was printed but the ack could not be sent; the relay will deliver it again";
    let queued = session.ack(&frame.id).await.is_ok()
        && session.outgoing.send(Outgoing::Close).await.is_ok();
    drop(session.outgoing);
    match session.sink.await {
        Ok(Ok(())) if queued => {}
        Ok(Err(reason)) => anyhow::bail!("{not_sent}: {reason}"),
        _ => anyhow::bail!("{not_sent}"),
    }
    if session.source.awaits_close() {
        let _ = timeout(CLOSE_WAIT, async {
            while !matches!(
                session.source.next().await,
                Incoming::Closed(_) | Incoming::Lost(_)
            ) {}
        })
        .await;
    }
    ui.status(format!(
        "{} {} {} (acked)",
        paint("Received").green(),
        frame.event_type,
        frame.id
    ));
    Ok(())
}

/// Connects (again and again if need be, by [`reconnect::run`]) until a
/// matching event arrives. The first connection must work: a relay that
/// cannot be reached at all (a mistyped `--relay`, something else on that
/// port) is exit 1 at once, not a retry loop that ends as a timeout; once
/// connected, a lost connection is retried like `listen` does.
async fn next_event(
    connector: &Connector,
    ui: &Ui,
    args: &WaitArgs,
    printed: &Printed,
) -> anyhow::Result<(Session, EventFrame)> {
    // `wait` has no Ctrl-C handling of its own: the signal ends it.
    let never = CancellationToken::new();
    let found = reconnect::run(
        |_| async {
            ui.spin("Connecting to the relay...");
            let link = connector.open(ui, &never).await?;
            check_protocol(&link.ready).map_err(SessionEnd::Fatal)?;
            let ready_at = Instant::now();
            ui.detail(format!(
                "connected; webhook URL {}{}",
                link.ready.webhook_url,
                link.via()
            ));
            ui.spin(waiting_for(args));
            let mut session = Session::start(link);
            match read_until_event(&mut session, args.events.as_ref(), printed, ui).await {
                Ok(frame) => Ok((session, frame)),
                Err(SessionEnd::Dropped {
                    reason, restarting, ..
                }) => Err(SessionEnd::Dropped {
                    reason,
                    up_for: Some(ready_at.elapsed()),
                    restarting,
                }),
                Err(end) => Err(end),
            }
        },
        connector.url().as_str(),
        connector.via(),
        &never,
        ui,
    )
    .await?;
    found.ok_or_else(|| anyhow::anyhow!("stopped before an event arrived"))
}

/// The spinner's text while connected: what `wait` waits for, how long.
fn waiting_for(args: &WaitArgs) -> String {
    let what = match &args.events {
        Some(filter) => format!("an event matching {}", filter.to_query()),
        None => "the next event".to_owned(),
    };
    let until = match args.timeout {
        t if t.is_zero() => String::new(),
        t => format!(" (up to {})", humantime::format_duration(t)),
    };
    format!("Waiting for {what}{until}...")
}

/// Reads until an event that matches `filter`.
async fn read_until_event(
    session: &mut Session,
    filter: Option<&GlobList>,
    printed: &Printed,
    ui: &Ui,
) -> Result<EventFrame, SessionEnd> {
    let mut last_error = None;
    loop {
        let next = match timeout(LIVENESS, session.source.next()).await {
            Ok(next) => next,
            Err(_) => return Err(SessionEnd::failed("heard nothing from the relay for 60s")),
        };
        match next {
            Incoming::Lost(reason) => return Err(SessionEnd::failed(reason)),
            Incoming::Closed(frame) => return Err(on_close(frame.as_ref(), last_error.as_ref())),
            Incoming::Message(RelayMessage::Event(frame))
                if !frame.replay && printed.contains(&frame.id) =>
            {
                ui.detail(format!(
                    "{} was printed by an earlier wait; acking it again",
                    frame.id
                ));
                session.ack(&frame.id).await?;
            }
            Incoming::Message(RelayMessage::Event(frame))
                if filter.is_none_or(|f| f.matches(&frame.event_type)) =>
            {
                return Ok(crate::agent::frame::owned(frame));
            }
            Incoming::Message(RelayMessage::Error(error)) => last_error = Some(error),
            _ => {}
        }
    }
}
