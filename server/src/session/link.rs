//! What a transport and the session loop say to each other.

use lobster_shared::ids::EventId;
use lobster_shared::wire::{AgentMessage, BodyEncoding, EventFrame, RelayMessage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::rfc3339;
use crate::store::Delivery;

/// What a transport gives the session loop.
pub(crate) enum Inbound {
    /// One frame from the agent.
    Message(AgentMessage),
    /// Acks and nacks posted over HTTP; answered once applied.
    Batch(AnswerBatch),
    /// The transport can take events now (a poll arrived).
    Wants,
    Violation(String),
    /// The agent closed the session itself.
    Closed,
    Gone(String),
}

/// Acks and nacks from `POST .../acks`, and where their outcome goes. The
/// ids are the agent's text, checked where the session applies them.
pub(crate) struct AnswerBatch {
    pub acks: Vec<String>,
    /// `(id, reason)`.
    pub nacks: Vec<(String, String)>,
    pub reply: oneshot::Sender<BatchOutcome>,
}

/// What the session did with an [`AnswerBatch`].
pub(crate) struct BatchOutcome {
    pub acked: usize,
    pub nacked: usize,
    /// The acks' store write; `true` once stored.
    pub acks_stored: Option<JoinHandle<bool>>,
    pub nacks_stored: bool,
}

/// A transport, as the session loop sees it. Futures from [`Link::next`]
/// are dropped when another branch of the loop wins, so it must be cancel
/// safe.
pub(crate) trait Link: Send {
    /// A pull transport leases only what the agent asks for
    /// ([`Link::demand`]) and takes no events pushed from their commit.
    const PULL: bool = false;

    /// Queues an event frame; [`Link::flush`] sends what is queued.
    fn feed_event(
        &mut self,
        id: &EventId,
        json: String,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Queues a leased event: as an event frame ([`Link::feed_event`])
    /// unless the transport carries events some other way (a callback
    /// POSTs the original request).
    fn feed(&mut self, delivery: Delivery) -> impl Future<Output = Result<(), String>> + Send {
        async move {
            let frame = event_json(&delivery);
            self.feed_event(&delivery.id, frame).await
        }
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Sends one frame at once (`ready`).
    fn send(&mut self, message: &RelayMessage) -> impl Future<Output = Result<(), String>> + Send;

    /// What the agent says next; `None` for something that needs nothing
    /// from the loop (a ping answered, a keep-alive sent).
    fn next(&mut self) -> impl Future<Output = Option<Inbound>> + Send;

    /// What the agent already said, without waiting: `None` when nothing
    /// is there.
    fn try_next(&mut self) -> Option<Option<Inbound>>;

    /// How many events the transport can take now; `None`: as many as the
    /// session's free slots.
    fn demand(&self) -> Option<usize> {
        None
    }

    /// Since when the agent has been away, for transports that outlive
    /// their requests (long-poll); `None` while it is there.
    fn away_since(&self) -> Option<Instant> {
        None
    }

    /// These events' leases ran out: never hand them on.
    fn expired(&mut self, _ids: &[EventId]) {}

    /// When the transport next wants [`Link::at_deadline`] (a WebSocket's
    /// next ping); `None`: never. The loop keeps one timer for all its
    /// deadlines and this one, rather than a timer in every transport.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Its [`Link::deadline`] came; `Err` says why the agent is gone.
    fn at_deadline(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Says goodbye as the transport does for `ending`.
    fn finish(&mut self, ending: &Ending) -> impl Future<Output = ()> + Send;
}

/// How a session ended.
pub(crate) enum Ending {
    Revoked,
    Shutdown,
    Violation(String),
    /// The agent closed (a WebSocket Close frame).
    ClosedByAgent,
    Gone(String),
}

/// A leased event as the `event` frame every transport carries, in JSON.
///
/// The frame borrows the delivery's strings and, for a UTF-8 body, the
/// body itself: the only copy of the body on its way out is its escaped
/// form in the frame, written into a buffer sized for it.
pub(super) fn event_json(d: &Delivery) -> String {
    let encoded;
    let (body, body_encoding) = match std::str::from_utf8(&d.body) {
        Ok(text) => (text, BodyEncoding::Utf8),
        Err(_) => {
            let (text, encoding) = EventFrame::encode_body(&d.body);
            encoded = text;
            (encoded.as_str(), encoding)
        }
    };
    let received_at = rfc3339(d.received_at);
    let frame = RelayMessage::Event(EventFrame {
        id: d.id.as_str(),
        event_type: &d.event_type,
        received_at: &received_at,
        attempt: d.attempt,
        headers: (d.headers.iter())
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect(),
        body,
        body_encoding,
        replay: d.replay,
    });
    // The frame's other fields and the body's escapes take a few hundred
    // bytes; growing from serde_json's 128 would copy the body four times.
    let mut json = Vec::with_capacity(body.len() + 512);
    serde_json::to_writer(&mut json, &frame).expect("relay messages always serialize");
    String::from_utf8(json).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn delivery(body: &[u8], replay: bool) -> Delivery {
        Delivery {
            id: EventId::generate(),
            event_type: "order.paid".into(),
            received_at: 1_764_900_000_123,
            attempt: 2,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-quote".into(), "say \"hi\"".into()),
            ],
            body: Bytes::copy_from_slice(body),
            replay,
        }
    }

    /// What an agent reads back is the delivery, the body byte for byte,
    /// text or not.
    #[test]
    fn the_event_frame_carries_the_delivery_whole() {
        for (body, encoding) in [
            (
                &br#"{"text":"caf\u00e9 \"quoted\" \\ tab\t","n":1}"#[..],
                BodyEncoding::Utf8,
            ),
            ("café ✓\n".as_bytes(), BodyEncoding::Utf8),
            (&[0, 0xff, 0xfe, b'a'][..], BodyEncoding::Base64),
        ] {
            for replay in [false, true] {
                let d = delivery(body, replay);
                let RelayMessage::Event(frame) = RelayMessage::from_json(&event_json(&d)).unwrap()
                else {
                    panic!("not an event frame")
                };
                assert_eq!(frame.id, d.id.as_str());
                assert_eq!(frame.event_type, "order.paid");
                assert_eq!(frame.received_at, rfc3339(d.received_at));
                assert_eq!(frame.attempt, 2);
                assert_eq!(frame.headers, d.headers);
                assert_eq!(frame.body_encoding, encoding);
                assert_eq!(frame.raw_body().unwrap(), body);
                assert_eq!(frame.replay, replay);
            }
        }
    }
}
