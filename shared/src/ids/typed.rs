//! One type per kind of id, so an agent id cannot be passed where an event
//! id belongs, and a value from outside is checked once, where it enters.
//!
//! Each type is a `String` underneath and serializes as that string. There
//! are three ways to get one:
//! - `generate()`, a new id (the ULID-based ones sort in creation order);
//! - `parse(text)`, for text from a request, a frame or the command line:
//!   checks the prefix and the shape the generator gives it (deserializing
//!   checks the same way);
//! - `from_stored(text)`, unchecked, for values read back from the relay's
//!   own database (and nowhere else).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use super::{
    AGENT_ID_PREFIX, ALPHABET, EVENT_ID_PREFIX, INSTANCE_ID_PREFIX, RELAY_ID_LEN, RELAY_ID_PREFIX,
    RELAY_ID_SYMBOLS, SESSION_ID_PREFIX, prefixed_ulid, random_symbols,
};

/// Why a text is not an id of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {kind}: {reason}")]
pub struct IdError {
    /// What was expected: "an event id", "a workspace name", ...
    pub kind: &'static str,
    /// The rejected text, cut to 80 characters.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Symbols of a ULID as the `ulid` crate prints them: uppercase Crockford.
const ULID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a ULID.
const ULID_LEN: usize = 26;
/// Longest workspace name.
pub const WORKSPACE_NAME_MAX: usize = 64;

/// The common code of every id type: a checked `String`.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `text` (prefix, length, alphabet) and takes it.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                Self::check(text)?;
                Ok(Self(text.to_owned()))
            }

            /// [`Self::parse`] of a `String` the caller owns, kept without
            /// a copy (an agent's ack, read from its frame).
            pub fn parse_owned(text: String) -> Result<Self, IdError> {
                Self::check(&text)?;
                Ok(Self(text))
            }

            fn check(text: &str) -> Result<(), IdError> {
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(text).map_err(|reason| IdError {
                    kind: $kind,
                    text: text.chars().take(80).collect(),
                    reason,
                })
            }

            /// A value the relay stored itself, taken as it is, unchecked.
            /// Only the store (mapping its own rows) uses this: anything
            /// from outside goes through [`Self::parse`].
            pub fn from_stored(text: impl Into<String>) -> Self {
                Self(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Like the string's: messages that show an id with `{:?}` read
        /// as they did when ids were strings.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Lets maps keyed by this id be searched with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        /// Text from outside: checked like [`Self::parse`].
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse_owned(text.into_owned()).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An id made of a prefix and a ULID, with its generator.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:ident) => {
        id_type!($(#[$doc])* $name, $kind, |text| check_ulid(text, $prefix));

        impl $name {
            /// A new id: the prefix and a ULID. Later calls sort after
            /// earlier ones, even within one millisecond.
            pub fn generate() -> Self {
                Self(prefixed_ulid($prefix))
            }
        }
    };
}

ulid_id!(
    /// An event: `evt_` + ULID.
    EventId,
    "an event id",
    EVENT_ID_PREFIX
);
ulid_id!(
    /// An agent: `agt_` + ULID.
    AgentId,
    "an agent id",
    AGENT_ID_PREFIX
);
ulid_id!(
    /// A session of an agent (a connection, a poll, a callback): `ses_` +
    /// ULID.
    SessionId,
    "a session id",
    SESSION_ID_PREFIX
);
ulid_id!(
    /// A relay process among those sharing one database: `ins_` + ULID.
    InstanceId,
    "an instance id",
    INSTANCE_ID_PREFIX
);
id_type!(
    /// The public part of an agent's webhook URL: `rly_` + 26 random
    /// lowercase Crockford base32 symbols (130 bits).
    RelayId,
    "a relay id",
    check_relay_id
);
id_type!(
    /// A workspace's name: `[a-z0-9-]{1,64}`, no prefix.
    WorkspaceName,
    "a workspace name",
    check_workspace_name
);

impl RelayId {
    /// A new relay id. It is the only thing standing between the internet
    /// and an agent's queue, so it carries no timestamp or counter that
    /// would narrow a guess.
    pub fn generate() -> RelayId {
        RelayId(format!(
            "{RELAY_ID_PREFIX}{}",
            random_symbols(RELAY_ID_SYMBOLS)
        ))
    }
}

impl WorkspaceName {
    /// The workspace every relay has, configured by flags.
    pub fn default_workspace() -> WorkspaceName {
        WorkspaceName("default".to_owned())
    }
}

fn check_ulid(text: &str, prefix: &str) -> Result<(), &'static str> {
    let Some(ulid) = text.strip_prefix(prefix) else {
        return Err("wrong prefix");
    };
    if ulid.len() != ULID_LEN {
        return Err("wrong length");
    }
    if !ulid.bytes().all(|b| ULID_ALPHABET.contains(&b)) {
        return Err("not an uppercase ULID");
    }
    // 26 symbols hold 130 bits; a ULID has 128, so the first is 0 to 7.
    if ulid.as_bytes()[0] > b'7' {
        return Err("ULID out of range");
    }
    Ok(())
}

fn check_relay_id(text: &str) -> Result<(), &'static str> {
    let Some(symbols) = text.strip_prefix(RELAY_ID_PREFIX) else {
        return Err("wrong prefix");
    };
    if text.len() != RELAY_ID_LEN {
        return Err("wrong length");
    }
    if !symbols.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err("not lowercase base32");
    }
    Ok(())
}

/// `[a-z0-9-]{1,64}`, the rule workspaces were always created by.
fn check_workspace_name(text: &str) -> Result<(), &'static str> {
    if !(1..=WORKSPACE_NAME_MAX).contains(&text.len()) {
        return Err("must be 1 to 64 characters");
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
