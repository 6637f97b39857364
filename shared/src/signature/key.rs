//! Signing secrets, read the way each scheme's senders read them.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use super::Scheme;

const WHSEC_PREFIX: &str = "whsec_";

/// Senders disagree about padding; only the decoded bytes matter.
pub(super) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One signing secret, decoded: for Standard Webhooks `whsec_<base64>` means
/// the decoded bytes, any other string its raw bytes. Stripe and GitHub always
/// use the raw string, `whsec_` included, as their senders do.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) raw: Vec<u8>,
    decoded: Option<Vec<u8>>,
}

/// Why a signing secret cannot be used. Messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing was given.
    #[error(
        "the signing secret is empty; use the secret the webhook sender shows for this endpoint"
    )]
    Empty,
    /// `whsec_` with nothing after it.
    #[error(
        "the signing secret is only the `whsec_` prefix; copy the whole secret, including what follows"
    )]
    EmptyAfterPrefix,
    /// `whsec_` followed by something that is not base64.
    #[error(
        "the signing secret starts with `whsec_` but the rest is not valid base64; copy it exactly as the sender shows it, or drop the prefix to use the string as raw bytes"
    )]
    InvalidBase64,
}

impl SigningKey {
    /// Reads one secret as a sender's dashboard shows it.
    pub fn parse(secret: &str) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::Empty);
        }
        let decoded = match secret.strip_prefix(WHSEC_PREFIX) {
            Some("") => return Err(KeyError::EmptyAfterPrefix),
            Some(encoded) => Some(
                LENIENT_BASE64
                    .decode(encoded)
                    .map_err(|_| KeyError::InvalidBase64)?,
            ),
            None => None,
        };
        Ok(Self {
            raw: secret.as_bytes().to_vec(),
            decoded,
        })
    }

    /// Like [`SigningKey::parse`], but for a known scheme: GitHub and Stripe
    /// never decode a secret, so for them a `whsec_` secret whose rest is not
    /// base64 is still a good key. Prefer this where the scheme is known.
    pub fn parse_for(scheme: Scheme, secret: &str) -> Result<Self, KeyError> {
        match scheme {
            Scheme::StandardWebhooks => Self::parse(secret),
            _ if secret.is_empty() => Err(KeyError::Empty),
            _ => Ok(Self {
                raw: secret.as_bytes().to_vec(),
                decoded: None,
            }),
        }
    }

    pub(super) fn standard_bytes(&self) -> &[u8] {
        self.decoded.as_deref().unwrap_or(&self.raw)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::fixtures::{BODY, TS, check, key_for_stripe, signed};

    #[test]
    fn signing_keys_parse_or_say_what_to_fix() {
        let cases: [(&str, Result<&[u8], KeyError>); 7] = [
            ("", Err(KeyError::Empty)),
            ("whsec_", Err(KeyError::EmptyAfterPrefix)),
            ("whsec_not*base64", Err(KeyError::InvalidBase64)),
            ("whsec_bm9wYWQ", Ok(b"nopad")),
            ("whsec_bm9wYWQ=", Ok(b"nopad")),
            ("plain secret", Ok(b"plain secret")),
            ("WHSEC_bm9wYWQ=", Ok(b"WHSEC_bm9wYWQ=")),
        ];
        for (secret, expected) in cases {
            let parsed = SigningKey::parse(secret);
            let bytes = parsed.as_ref().map(SigningKey::standard_bytes);
            assert_eq!(bytes.map_err(Clone::clone), expected, "{secret:?}");
            if let Err(err) = parsed {
                let message = err.to_string();
                assert!(secret.len() < 7 || !message.contains(secret), "{message}");
            }
        }
    }

    #[test]
    fn github_and_stripe_keys_need_not_be_base64() {
        let secret = "whsec_not*base64";
        for scheme in Scheme::ALL {
            let parsed = SigningKey::parse_for(scheme, secret);
            assert_eq!(
                parsed.is_ok(),
                scheme != Scheme::StandardWebhooks,
                "{scheme}"
            );
            assert_eq!(
                SigningKey::parse_for(scheme, "").unwrap_err(),
                KeyError::Empty
            );
        }
        let key = key_for_stripe(secret);
        let request = signed(Scheme::Stripe, &key, BODY);
        assert_eq!(check(Scheme::Stripe, &key, &request, BODY, TS), "ok");
    }
}
