//! `lobster-relay listen`: receive events over the WebSocket (or SSE, or
//! long-poll: `transport`) and handle them.
//!
//! - `args`: the flags, merged with config.toml into [`Settings`].
//! - `route`, `headers`: parsing `--forward` and `--header`, and the
//!   headers of a forwarded request.
//! - `handler` with `print`, `forward` (its HTTP client: `post`), `exec`:
//!   one event in, an ack or nack out, and its `-->` / `<--` lines.
//! - `session`, `dispatch`: one session (reader loop, handler tasks),
//!   whatever the transport.
//! - `signal`: Ctrl-C handling.
//!
//! Opening sessions, their end and reconnecting are [`crate::agent`]'s,
//! shared with `wait`.

mod args;
mod dispatch;
mod exec;
mod forward;
mod handled;
mod handler;
pub(crate) mod headers;
mod lines;
mod outcome;
mod pool;
mod post;
mod print;
pub(crate) mod route;
mod session;
mod signal;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::Arc;

pub use crate::agent::transport::TransportChoice;
pub use args::{ListenArgs, Mode, Settings};
pub use headers::ExtraHeader;
pub use route::Route;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::dispatch::Dispatch;
use self::handler::Handler;
use self::session::{Backlog, SessionInfo};
use crate::agent::close::SessionEnd;
use crate::agent::reconnect::{self, Attempt};
use crate::agent::transport::Connector;
use crate::api::{ApiClient, ApiError};
use crate::context::Context;
use crate::exit::Fatal;
use lobster_shared::api::AgentMe;

/// Most events one poll asks for (the relay caps it at `max_in_flight`).
const POLL_MAX: u32 = 100;

/// How long the queue count before each connect may take.
const BACKLOG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `listen` until Ctrl-C (then `Ok`) or a fatal error.
pub async fn run(ctx: &Context, args: ListenArgs) -> anyhow::Result<()> {
    // Dropped last: writes the event lines still batched.
    let (ui, _batch) = ctx.ui.batch_events();
    let ui = &ui;
    let settings = args.settings(&ctx.config.listen)?;
    let (api_key, source) = ctx.api_key().await?;
    ui.detail(format!("API key from the {source}"));
    let client = ApiClient::new(ctx.relay.clone(), api_key.clone())?.timeout(BACKLOG_TIMEOUT);
    let connector = Connector::new(
        settings.transport,
        &ctx.relay,
        &api_key,
        settings.events.as_ref(),
        POLL_MAX,
    )?;
    let via = connector.via().cloned();
    let stop = CancellationToken::new();
    // Lines on stdout come in arrival order: printing takes microseconds,
    // and a reader of `listen | jq` expects the relay's order.
    let concurrency = match settings.mode {
        Mode::Print => 1,
        _ => settings.concurrency as usize,
    };
    let handler = Handler::new(settings.mode, settings.events, ui.clone(), stop.clone())?;
    let dispatch = Dispatch {
        handler: Arc::new(handler),
        permits: Arc::new(Semaphore::new(concurrency)),
        tracker: TaskTracker::new(),
        stop: stop.clone(),
    };
    signal::spawn(stop.clone(), ui.clone());

    let result = reconnect::run(
        |attempt: Attempt| {
            let (connector, dispatch, client) = (&connector, &dispatch, &client);
            let via = via.as_ref();
            async move {
                ui.spin(match attempt.offline_since {
                    None => format!("Connecting to {}...", ctx.account()),
                    Some(_) => format!("Reconnecting to {}...", ctx.account()),
                });
                let backlog = tokio::select! {
                    () = dispatch.stop.cancelled() => return Err(SessionEnd::Stopped),
                    backlog = backlog(client, via.is_some()) => backlog?,
                };
                let link = connector.open(ui, &dispatch.stop).await?;
                let info = SessionInfo {
                    offline_since: attempt.offline_since,
                    backlog,
                };
                // A listener's sessions only end: it stops on Ctrl-C.
                Err::<Infallible, _>(session::run(link, dispatch, ui, info).await)
            }
        },
        ctx.account(),
        via.as_ref(),
        &stop,
        ui,
    )
    .await
    .map(|_| ());
    ui.stop_spin();
    if result.is_ok() {
        // Handlers of a connection lost earlier may still run; their answers
        // cannot be sent, but their side effects should finish.
        dispatch.tracker.close();
        dispatch.tracker.wait().await;
        ui.status("Stopped. New events wait in the relay until a listener connects.");
    }
    result
}

/// What waits in the agent's queue, asked just before connecting, so the
/// ready line can say how many events are arriving. A refused key is fatal;
/// an unreachable relay is a failed attempt; anything else only means the
/// count is unknown. Through a proxy, an unreachable relay is left to the
/// WebSocket's attempt: its CONNECT tunnel says what the proxy answered
/// (a 407, a 403), where reqwest reports only that the tunnel failed.
async fn backlog(client: &ApiClient, via_proxy: bool) -> Result<Option<Backlog>, SessionEnd> {
    let err_is_auth = |status: reqwest::StatusCode| status == 401 || status == 403;
    match client
        .get_as::<AgentMe>(&["api", "v1", "agent", "me"])
        .await
    {
        Ok(me) => Ok(Some(Backlog {
            pending_events: me.pending_events,
            online_sessions: me.online_sessions,
        })),
        Err(ApiError::Status { status, .. }) if err_is_auth(status) => Err(SessionEnd::Fatal(
            Fatal::auth(
                format!("the relay refused the API key (HTTP {})", status.as_u16()),
                "check --api-key / LOBSTER_RELAY_API_KEY, or run `lobster-relay login` again \
                 with a valid key",
            )
            .into(),
        )),
        Err(ApiError::Unreachable { .. }) if via_proxy => Ok(None),
        Err(ApiError::Unreachable { reason, .. }) => Err(SessionEnd::failed(reason)),
        Err(_) => Ok(None),
    }
}
