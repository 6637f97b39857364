//! `lobster-relay listen`: receive events over the WebSocket and handle them.
//!
//! - `args`: the flags, and the [`Mode`] they select.
//! - `route`, `headers`: parsing `--forward` and `--header`, and the
//!   headers of a forwarded request.
//! - `handler` with `print`, `forward`, `exec`: one event in, an
//!   ack or nack out.
//! - `connect`, `session`, `writer`, `dispatch`, `close`: one
//!   WebSocket session (reader loop, writer task, handler tasks).
//! - `reconnect`, `backoff`: sessions again and again, with jittered delays.
//! - `signal`: Ctrl-C handling.

mod args;
mod backoff;
mod close;
mod connect;
mod dispatch;
mod exec;
mod forward;
mod handler;
mod headers;
mod print;
mod reconnect;
mod route;
mod session;
mod signal;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use args::{ListenArgs, Mode};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::close::SessionEnd;
use self::connect::ConnectError;
use self::dispatch::Dispatch;
use self::handler::Handler;
use crate::cli::GlobalArgs;
use crate::credentials;
use crate::ui::Ui;

/// Runs `listen` until Ctrl-C (then `Ok`) or a fatal error.
pub async fn run(global: &GlobalArgs, args: ListenArgs) -> anyhow::Result<()> {
    let ui = Ui::new(global);
    let api_key = credentials::api_key(global)?;
    let url = connect::connect_url(&global.relay, args.events.as_ref());
    let stop = CancellationToken::new();
    let mode = args.mode();
    // Lines on stdout come in arrival order: printing takes microseconds,
    // and a reader of `listen | jq` expects the relay's order.
    let concurrency = match mode {
        Mode::Print => 1,
        _ => args.concurrency as usize,
    };
    let handler = Handler::new(mode, args.events.clone(), ui, stop.clone())?;
    let dispatch = Dispatch {
        handler: Arc::new(handler),
        permits: Arc::new(Semaphore::new(concurrency)),
        tracker: TaskTracker::new(),
        stop: stop.clone(),
    };
    signal::spawn(stop.clone(), ui);

    let result = reconnect::run(
        |was_ready| {
            let (url, api_key, dispatch) = (&url, &api_key, &dispatch);
            async move {
                ui.detail(format!("connecting to {url}"));
                let connected = tokio::select! {
                    () = dispatch.stop.cancelled() => return SessionEnd::Stopped,
                    connected = connect::connect(url, api_key) => connected,
                };
                match connected {
                    Ok(ws) => session::run(ws, dispatch, ui, was_ready).await,
                    Err(ConnectError::Rejected(fatal)) => SessionEnd::Fatal(fatal.into()),
                    Err(ConnectError::Failed(reason)) => SessionEnd::failed(reason),
                }
            }
        },
        &stop,
        ui,
    )
    .await;
    if result.is_ok() {
        // Handlers of a connection lost earlier may still run; their answers
        // cannot be sent, but their side effects should finish.
        dispatch.tracker.close();
        dispatch.tracker.wait().await;
    }
    result
}
