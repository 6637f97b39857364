//! The fast path of [`RelayMessage::from_json`](super::RelayMessage::from_json)
//! for `event` frames.
//!
//! serde reads an internally tagged enum by buffering the whole object as
//! `Content` values (a `Vec` per object and array, one per header pair),
//! finding the tag among them, then deserializing the variant again from
//! the buffer. When the object's first key is `type` and its value is
//! `"event"`, the rest of the object can go straight to `EventFrame`'s
//! derived `Deserialize` instead, reading the same map. It gives up (`None`)
//! on anything else: another first key, another type, a second `type` key
//! (which serde refuses as a duplicate), or any error, and the caller then
//! reads the text again the derived way. So it only ever accepts frames the
//! derived reading accepts, with the same value; the tests compare the two.
//!
//! It reads into any `EventFrame<S>`: `String`s, or [`super::Text`], which
//! borrows from the frame every string that has no escape in it.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::EventFrame;

const TAG: &str = "type";

pub(super) fn parse<'de, S: Deserialize<'de>>(text: &'de str) -> Option<EventFrame<S>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let frame = de::Deserializer::deserialize_map(&mut de, EventVisitor(PhantomData)).ok()?;
    de.end().ok()?;
    Some(frame)
}

struct EventVisitor<S>(PhantomData<S>);

impl<'de, S: Deserialize<'de>> Visitor<'de> for EventVisitor<S> {
    type Value = EventFrame<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventFrame<S>, A::Error> {
        if map.next_key_seed(Is(TAG))? != Some(true) || !map.next_value_seed(Is("event"))? {
            return Err(de::Error::custom("not an event frame with `type` first"));
        }
        EventFrame::deserialize(MapAccessDeserializer::new(NoSecondTag(map)))
    }
}

/// Reads a string and says whether it is the given one.
struct Is(&'static str);

impl<'de> DeserializeSeed<'de> for Is {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Is {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// The rest of the frame's map, refusing a second `type` key.
struct NoSecondTag<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for NoSecondTag<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(NotTag(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A key of the frame: handed to `EventFrame`'s field seed unless it is
/// `type`.
struct NotTag<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for NotTag<K> {
    type Value = K::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for NotTag<K> {
    type Value = K::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<K::Value, E> {
        if v == TAG {
            return Err(E::duplicate_field(TAG));
        }
        self.0.deserialize(BorrowedStrDeserializer::new(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<K::Value, E> {
        if v == TAG {
            return Err(E::duplicate_field(TAG));
        }
        self.0.deserialize(StrDeserializer::new(v))
    }
}
