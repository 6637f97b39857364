//! Frames as an agent holds them: an event's strings are slices of the
//! frame's own bytes, not a `String` each.
//!
//! A WebSocket text message arrives as [`Utf8Bytes`], shared bytes. The
//! frame is read in place ([`RelayMessage::from_json_in_place`]), and each
//! string that needed no unescaping becomes a slice of those bytes: no
//! allocation or copy per header name and value, and `--forward` hands the
//! same bytes to the request's headers and body. A string that needed
//! unescaping (a JSON body's quotes) keeps the `String` unescaping built.
//! What is accepted and every error are those of
//! [`RelayMessage::from_json`].

use std::borrow::Cow;

use bytes::Bytes;
use lobster_shared::wire::{BodyEncoding, EventFrame, RelayMessage, Text, WireError};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A frame from the relay, its event's strings shared with the frame.
pub type Frame = RelayMessage<Utf8Bytes>;
/// An `event` frame, its strings shared with the frame.
pub type Event = EventFrame<Utf8Bytes>;

/// Reads a frame's text.
pub fn read(text: &Utf8Bytes) -> Result<Frame, WireError> {
    let bytes: &Bytes = text.as_ref();
    Ok(RelayMessage::from_json_in_place(text)?.map(|part| share(bytes, part)))
}

/// `part` as a slice of `frame` when it borrows from it, else as its own.
fn share(frame: &Bytes, part: Text<'_>) -> Utf8Bytes {
    match part.0 {
        Cow::Owned(owned) => Utf8Bytes::from(owned),
        Cow::Borrowed(part) => {
            let start = (part.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
            let inside = start
                .checked_add(part.len())
                .filter(|end| *end <= frame.len())
                .map(|end| frame.slice(start..end));
            // Checking the slice again costs about what a copy would, and
            // keeps this free of `unsafe`; it is always text.
            match inside.map(Utf8Bytes::try_from) {
                Some(Ok(shared)) => shared,
                _ => Utf8Bytes::from(part),
            }
        }
    }
}

/// The raw body, byte for byte as the relay received it: the frame's own
/// bytes when it travelled as UTF-8.
pub fn raw_body(event: &Event) -> Result<Bytes, WireError> {
    match event.body_encoding {
        BodyEncoding::Utf8 => Ok(Bytes::from(event.body.clone())),
        BodyEncoding::Base64 => event.raw_body().map(Bytes::from),
    }
}

/// The frame with `String`s, as the relay sent it (for `--print`, `wait`).
pub fn owned(event: Event) -> EventFrame {
    event.map(|text| text.as_str().to_owned())
}

/// An event with `String`s, held as shared text (for tests).
#[cfg(test)]
pub fn shared(event: EventFrame) -> Event {
    event.map(Utf8Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"type":"event","id":"evt_1","event_type":"message.received","received_at":"2026-11-28T12:00:00.000Z","attempt":2,"headers":[["content-type","application/json"],["x-a","b\u00e9"]],"body":"{\"a\":1}","body_encoding":"utf8"}"#;

    #[test]
    fn strings_are_slices_of_the_frame_unless_unescaped() {
        let text = Utf8Bytes::from(EVENT);
        let Ok(RelayMessage::Event(event)) = read(&text) else {
            panic!("not an event");
        };
        let range = text.as_bytes().as_ptr_range();
        let inside = |part: &Utf8Bytes| range.contains(&part.as_ptr());
        assert!(inside(&event.id) && inside(&event.headers[0].1));
        assert!(!inside(&event.headers[1].1) && !inside(&event.body));
        assert_eq!(event.headers[1].1, "bé");
        let expected = RelayMessage::from_json(EVENT).unwrap();
        assert_eq!(RelayMessage::Event(owned(event)), expected);
    }

    #[test]
    fn what_is_refused_is_refused_with_the_same_words() {
        for bad in ["", "{}", r#"{"type":"event","id":1}"#, "nul\0"] {
            let Err(WireError::Malformed(err)) = read(&Utf8Bytes::from(bad)) else {
                panic!("{bad:?} was read");
            };
            let Err(WireError::Malformed(reference)) = RelayMessage::from_json(bad) else {
                unreachable!()
            };
            assert_eq!(err.to_string(), reference.to_string());
        }
    }
}
