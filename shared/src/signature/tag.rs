//! HMAC-SHA256 tags, and judging a request's candidate signatures against
//! them in constant time.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::{SigningKey, VerifyError};

type HmacSha256 = Hmac<Sha256>;
pub(super) type Tag = [u8; 32];

pub(super) fn hmac(key: &[u8], parts: &[&[u8]]) -> Tag {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// One tag per key, computed once and then compared with every candidate, so
/// a header full of entries costs comparisons, not HMACs over the body.
pub(super) fn tags(keys: &[SigningKey], tag: impl Fn(&SigningKey) -> Tag) -> Vec<Tag> {
    keys.iter().map(tag).collect()
}

/// A candidate signature that is not exactly 32 bytes is malformed rather
/// than merely wrong: that is how truncation shows.
pub(super) fn decode_tag(
    decoded: Option<Vec<u8>>,
    not_decodable: &'static str,
) -> Result<Vec<u8>, &'static str> {
    match decoded {
        Some(bytes) if bytes.len() == 32 => Ok(bytes),
        Some(bytes) if bytes.is_empty() => Err("a signature is empty"),
        Some(_) => Err("a signature is not 32 bytes long (truncated?)"),
        None => Err(not_decodable),
    }
}

/// Any candidate matching any expected tag passes, whatever else the header
/// holds. Otherwise a malformed candidate explains the failure better than a
/// bare mismatch. Each comparison is constant-time; which one matched is no
/// secret.
pub(super) fn judge(
    expected: &[Tag],
    candidates: impl IntoIterator<Item = Result<Vec<u8>, &'static str>>,
) -> Result<(), VerifyError> {
    let mut malformed = None;
    for candidate in candidates {
        match candidate {
            Ok(sig)
                if expected
                    .iter()
                    .any(|tag| bool::from(tag.as_slice().ct_eq(&sig))) =>
            {
                return Ok(());
            }
            Ok(_) => {}
            Err(why) => malformed = malformed.or(Some(why)),
        }
    }
    Err(malformed.map_or(VerifyError::Mismatch, VerifyError::Malformed))
}

#[cfg(test)]
mod tests {
    use crate::signature::fixtures::{BODY, SIGNED, TS, WHSEC, key, signed};
    use crate::signature::{VerifyError, verify};

    #[test]
    fn any_key_of_a_rotation_passes() {
        let (old, new, stranger) = (
            key(WHSEC),
            key("whsec_bmV3IHNlY3JldA=="),
            key("raw stranger"),
        );
        let keys = [old.clone(), new.clone()];
        for scheme in SIGNED {
            for (signer, expected) in [(&old, "ok"), (&new, "ok"), (&stranger, "invalid_signature")]
            {
                let result = verify(scheme, &keys, &signed(scheme, signer, BODY), BODY, TS);
                assert_eq!(
                    result.map_or_else(|err| err.code(), |_| "ok"),
                    expected,
                    "{scheme}"
                );
            }
            let no_keys = verify(scheme, &[], &signed(scheme, &old, BODY), BODY, TS);
            assert_eq!(no_keys, Err(VerifyError::Mismatch));
        }
    }
}
