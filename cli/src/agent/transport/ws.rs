//! The WebSocket as a [`Link`]: the reader half is the event source, the
//! writer task (`agent/writer.rs`, acks, pings and the close) the sink.

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use lobster_shared::wire::{Ready, RelayMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{AckSink, EventSource, Incoming, LIVENESS, Link, Transport};
use crate::agent::close::{SessionEnd, on_close};
use crate::agent::frame;
use crate::agent::writer::{self, Outgoing};
use lobster_shared::error_chain;

/// Reads until the `ready` frame.
pub async fn handshake<S>(
    ws: &mut WebSocketStream<S>,
    stop: &CancellationToken,
) -> Result<Ready, SessionEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut last_error = None;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Err(SessionEnd::Stopped),
            next = timeout(LIVENESS, ws.next()) => next,
        };
        match next {
            Err(_) => {
                return Err(SessionEnd::failed(
                    "no ready frame from the relay within 60s",
                ));
            }
            Ok(None) => {
                return Err(SessionEnd::failed(
                    "the relay closed the connection before ready",
                ));
            }
            Ok(Some(Err(err))) => return Err(SessionEnd::failed(error_chain(&err))),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(on_close(frame.as_ref(), last_error.as_ref()));
            }
            Ok(Some(Ok(Message::Text(text)))) => match RelayMessage::from_json(&text) {
                Ok(RelayMessage::Ready(ready)) => return Ok(ready),
                Ok(RelayMessage::Error(error)) => last_error = Some(error),
                Ok(RelayMessage::Event(_)) => {
                    return Err(SessionEnd::failed("the relay sent an event before ready"));
                }
                Err(err) => return Err(SessionEnd::failed(format!("bad first frame: {err}"))),
            },
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Waits for `ready` on an open WebSocket, then splits it into a [`Link`].
pub async fn open<S>(
    mut ws: WebSocketStream<S>,
    stop: &CancellationToken,
) -> Result<Link, SessionEnd>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ready = handshake(&mut ws, stop).await?;
    Ok(link(ready, ws))
}

/// A [`Link`] over a WebSocket whose `ready` was read.
pub fn link<S>(ready: Ready, ws: WebSocketStream<S>) -> Link
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    Link {
        ready,
        source: Box::new(Source(stream)),
        sink: Box::new(Sink(sink)),
        transport: Transport::WebSocket,
        fallback: None,
    }
}

struct Source<S>(SplitStream<WebSocketStream<S>>);

impl<S> EventSource for Source<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn next(&mut self) -> BoxFuture<'_, Incoming> {
        Box::pin(async move {
            match self.0.next().await {
                None => Incoming::Lost("the connection was closed".to_owned()),
                Some(Err(err)) => Incoming::Lost(error_chain(&err)),
                Some(Ok(Message::Close(frame))) => Incoming::Closed(frame),
                Some(Ok(Message::Text(text))) => match frame::read(&text) {
                    Ok(message) => Incoming::Message(message),
                    Err(err) => Incoming::Unreadable(err.to_string()),
                },
                Some(Ok(_)) => Incoming::Alive,
            }
        })
    }

    fn awaits_close(&self) -> bool {
        true
    }
}

struct Sink<S>(SplitSink<WebSocketStream<S>, Message>);

impl<S> AckSink for Sink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn run(
        self: Box<Self>,
        outgoing: mpsc::Receiver<Outgoing>,
        session: CancellationToken,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(writer::run(self.0, outgoing, session))
    }
}
