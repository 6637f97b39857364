//! A string that never prints itself.
//!
//! API keys, admin tokens and signing secrets travel through config structs
//! that get logged with `{:?}`; wrapping them here makes a leak a type error
//! instead of a review finding. Reading the value takes an explicit
//! [`Secret::expose`], which is easy to grep for.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq as _;

/// What `Debug` and `Display` print instead of the value.
const REDACTED: &str = "[redacted]";

/// A string that never prints itself: `Debug` and `Display` show `[redacted]`.
///
/// There is deliberately no `Serialize`: a secret that must reach the wire
/// (the API key shown once at agent creation) goes through
/// [`Secret::expose`], so every place that reveals one is visible.
#[derive(Clone, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be printed.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value itself, for the few places that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Constant-time, so comparing a presented token with the expected one does
/// not reveal how many leading bytes were right.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Lets clap parse `--api-key` and friends straight into a `Secret`.
impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "lrk_super-secret-value";

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new(VALUE);
        let nested = Some(vec![secret.clone()]);
        for shown in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret:>40}"),
            format!("{nested:?}"),
        ] {
            assert!(!shown.contains(VALUE), "leaked in {shown:?}");
            assert!(!shown.contains("super"), "leaked a part in {shown:?}");
            assert!(shown.contains(REDACTED), "no marker in {shown:?}");
        }
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(Secret::new(VALUE).expose(), VALUE);
        assert_eq!(Secret::from(VALUE.to_owned()).expose(), VALUE);
        assert_eq!(Secret::from(VALUE).expose(), VALUE);
        let parsed: Secret = VALUE.parse().unwrap();
        assert_eq!(parsed.expose(), VALUE);
    }

    #[test]
    fn equality_compares_values() {
        let cases = [
            (VALUE, VALUE, true),
            (VALUE, "lrk_super-secret-valuE", false),
            (VALUE, "lrk_super-secret-valu", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(Secret::new(a) == Secret::new(b), equal, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: Secret = serde_json::from_str(&format!("\"{VALUE}\"")).unwrap();
        assert_eq!(secret.expose(), VALUE);
    }
}
