//! The writer task: the only owner of the WebSocket's sending half.
//!
//! Handlers send their acks and nacks through a channel; the writer sends
//! each as it comes, pings the relay every 20 s, and sends the final close.
//! When a send fails it cancels the session, so the reader stops too.

use std::time::Duration;

use futures_util::SinkExt as _;
use futures_util::stream::SplitSink;
use lobster_shared::wire::AgentMessage;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::exit::error_chain;

/// How often we ping the relay, as the relay pings us.
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// What handlers and the session ask the writer to send.
#[derive(Debug)]
pub enum Outgoing {
    /// An ack or a nack.
    Reply(AgentMessage),
    /// A normal close (1000); the writer stops after it.
    Close,
}

/// Sends until the session ends. Returns why it stopped early, if it did.
pub async fn run<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    session: CancellationToken,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let result = loop {
        let message = tokio::select! {
            () = session.cancelled() => break Ok(()),
            next = outgoing.recv() => match next {
                Some(Outgoing::Reply(reply)) => Message::text(reply.to_json()),
                Some(Outgoing::Close) => {
                    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    break sink.send(Message::Close(Some(close))).await.map_err(|e| error_chain(&e));
                }
                None => break Ok(()),
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        if let Err(err) = sink.send(message).await {
            break Err(error_chain(&err));
        }
    };
    if result.is_err() {
        session.cancel();
    }
    result
}
