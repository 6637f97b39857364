//! Which signature scheme a workspace's senders use, and how it is spelled.

use std::fmt;
use std::str::FromStr;

/// Which signature scheme a workspace's senders use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (the default).
    #[default]
    StandardWebhooks,
    /// `X-Hub-Signature-256` over the body.
    Github,
    /// `Stripe-Signature` over `{t}.{body}`.
    Stripe,
    /// No verification, for development only.
    None,
}

impl Scheme {
    /// Every scheme, in the order help texts list them.
    pub const ALL: [Scheme; 4] = [
        Self::StandardWebhooks,
        Self::Github,
        Self::Stripe,
        Self::None,
    ];

    /// The spelling used in flags, config files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::None => "none",
        }
    }
}

/// Case-insensitive, because the value often comes from an env var.
impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        let found = Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(wanted));
        found.ok_or_else(|| {
            format!("unknown signature scheme {s:?}; use standard-webhooks, github, stripe or none")
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Scheme {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Scheme {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_parse_display_and_serialize() {
        let cases = [
            ("standard-webhooks", Scheme::StandardWebhooks),
            ("github", Scheme::Github),
            ("stripe", Scheme::Stripe),
            ("none", Scheme::None),
        ];
        for (text, scheme) in cases {
            assert_eq!(text.parse::<Scheme>(), Ok(scheme));
            assert_eq!(text.to_uppercase().parse::<Scheme>(), Ok(scheme));
            assert_eq!(scheme.to_string(), text);
            let json = format!("\"{text}\"");
            assert_eq!(serde_json::from_str::<Scheme>(&json).unwrap(), scheme);
            assert_eq!(serde_json::to_string(&scheme).unwrap(), json);
        }
        assert_eq!(Scheme::default(), Scheme::StandardWebhooks);
        let err = "svix".parse::<Scheme>().unwrap_err();
        for word in ["svix", "standard-webhooks", "github", "stripe", "none"] {
            assert!(err.contains(word), "{err}");
        }
        assert!(serde_json::from_str::<Scheme>("\"hmac\"").is_err());
    }
}
