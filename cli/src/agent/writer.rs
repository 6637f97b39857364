//! The writer task: the only owner of the WebSocket's sending half.
//!
//! Handlers send their acks and nacks through a channel; the writer sends
//! them as they come (all that are waiting in one write: under load that is
//! one syscall for many acks, not one each), pings the relay every 20 s,
//! and sends the final close.
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

use lobster_shared::error_chain;

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

/// Most replies written together before a flush.
const MAX_BATCH: usize = 256;

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
        let next = tokio::select! {
            () = session.cancelled() => break Ok(()),
            next = outgoing.recv() => next,
            _ = ping.tick() => {
                match sink.send(Message::Ping(Default::default())).await {
                    Ok(()) => continue,
                    Err(err) => break Err(error_chain(&err)),
                }
            }
        };
        match send_batch(&mut sink, next, &mut outgoing).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => break Ok(()),
            Err(err) => break Err(error_chain(&err)),
        }
    };
    if result.is_err() {
        session.cancel();
    }
    result
}

enum Flow {
    Continue,
    Stop,
}

/// Writes `first` and every other item already waiting (up to
/// [`MAX_BATCH`]), then flushes once. A close is sent last and ends the
/// writer; so does the end of the channel.
async fn send_batch<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    first: Option<Outgoing>,
    outgoing: &mut mpsc::Receiver<Outgoing>,
) -> Result<Flow, tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut next = first;
    let mut fed = 0;
    let flow = loop {
        match next {
            Some(Outgoing::Reply(reply)) => {
                sink.feed(Message::text(reply.to_json())).await?;
                fed += 1;
            }
            Some(Outgoing::Close) => {
                let close = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                sink.feed(Message::Close(Some(close))).await?;
                break Flow::Stop;
            }
            None => break Flow::Stop,
        }
        if fed >= MAX_BATCH {
            break Flow::Continue;
        }
        next = match outgoing.try_recv() {
            Ok(item) => Some(item),
            Err(mpsc::error::TryRecvError::Empty) => break Flow::Continue,
            Err(mpsc::error::TryRecvError::Disconnected) => None,
        };
    };
    sink.flush().await?;
    Ok(flow)
}
