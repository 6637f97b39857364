//! Secrets at rest: AES-256-GCM for the workspace signing secrets and the
//! agents' callback URLs and callback signing secrets the store keeps.
//!
//! A stored secret is text with a version prefix, so a database can hold
//! both kinds and a reader always knows which it has:
//! - `v1:<base64(nonce | ciphertext | tag)>`: encrypted under the
//!   `--encryption-key`, with a fresh random 96-bit nonce per value and the
//!   value's identity (workspace name and position in its list) as
//!   associated data, so a ciphertext copied into another row or slot does
//!   not decrypt there.
//! - `plain:<secret>`: stored without a key (the server warns).
//!
//! GCM's tag makes a wrong key, a swapped row or a flipped bit an error,
//! never garbage: [`open`] either returns the secret that was sealed or
//! fails.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lobster_shared::Secret;

const ENCRYPTED_PREFIX: &str = "v1:";
const PLAIN_PREFIX: &str = "plain:";
const NONCE_LEN: usize = 12;
/// GCM's authentication tag, appended to the ciphertext.
const TAG_LEN: usize = 16;
/// What `Debug` and `Display` print instead of key material.
const REDACTED: &str = "[redacted]";

/// The `--encryption-key`: 32 bytes, given as 64 hex characters. Never
/// prints itself.
#[derive(Clone)]
pub struct EncryptionKey(Box<[u8; 32]>);

/// Why an `--encryption-key` value is not a key. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("--encryption-key must be 64 hex characters (32 bytes), got {0} characters")]
    Length(usize),
    #[error("--encryption-key must be 64 hex characters (0-9, a-f), but it holds other characters")]
    NotHex,
}

/// Why a stored secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Encrypted, and the relay was started without a key.
    #[error("the secret is encrypted and no encryption key was given")]
    KeyMissing,
    /// The tag did not verify: another key, another row, or altered bytes.
    #[error("the encryption key does not match the one the secrets were stored with")]
    WrongKey,
    /// Neither `v1:` nor `plain:`, or not valid base64 / too short.
    #[error("the stored secret is not in a format this build knows")]
    Malformed,
}

impl EncryptionKey {
    /// Parses 64 hex characters (either case; surrounding spaces ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyFormatError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(KeyFormatError::Length(text.chars().count()));
        }
        let mut key = Box::new([0u8; 32]);
        hex::decode_to_slice(text, key.as_mut_slice()).map_err(|_| KeyFormatError::NotHex)?;
        Ok(EncryptionKey(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_slice()))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether a stored value is encrypted (needs the key to be read).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

/// The stored form of `secret`: encrypted under `key` with `identity` as
/// associated data, or marked plain when there is no key.
pub fn seal(key: Option<&EncryptionKey>, secret: &Secret, identity: &[u8]) -> String {
    let Some(key) = key else {
        return format!("{PLAIN_PREFIX}{}", secret.expose());
    };
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let payload = Payload {
        msg: secret.expose().as_bytes(),
        aad: identity,
    };
    let sealed = key
        .cipher()
        .encrypt(Nonce::from_slice(&nonce), payload)
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(out))
}

/// Reads a stored value back; `identity` must be the one it was sealed with.
pub fn open(
    key: Option<&EncryptionKey>,
    stored: &str,
    identity: &[u8],
) -> Result<Secret, OpenError> {
    if let Some(plain) = stored.strip_prefix(PLAIN_PREFIX) {
        return Ok(Secret::new(plain));
    }
    let encoded = stored
        .strip_prefix(ENCRYPTED_PREFIX)
        .ok_or(OpenError::Malformed)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| OpenError::Malformed)?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let key = key.ok_or(OpenError::KeyMissing)?;
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let payload = Payload {
        msg: sealed,
        aad: identity,
    };
    let plain = key
        .cipher()
        .decrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| OpenError::WrongKey)?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| OpenError::Malformed)
}

/// The associated data of a workspace's `index`th secret: binds the value
/// to its row and slot.
pub fn secret_identity(workspace: &str, index: usize) -> Vec<u8> {
    format!("lobster-relay/workspace-secret/v1\0{workspace}\0{index}").into_bytes()
}

/// The associated data of an agent's sealed callback URL (`"url"`) or
/// signing secret (`"secret"`): binds the value to its agent and field.
pub fn callback_identity(agent_id: &str, field: &str) -> Vec<u8> {
    format!("lobster-relay/callback/v1\0{agent_id}\0{field}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const VALUE: &str = "gh-webhook-secret-value";

    fn key(hex: &str) -> EncryptionKey {
        EncryptionKey::from_hex(hex).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_identity() {
        let k = key(HEX);
        let id = secret_identity("acme", 0);
        let stored = seal(Some(&k), &Secret::new(VALUE), &id);
        assert!(stored.starts_with("v1:"), "{stored}");
        assert!(is_encrypted(&stored));
        assert!(!stored.contains(VALUE));
        assert_eq!(open(Some(&k), &stored, &id).unwrap().expose(), VALUE);
        // A fresh nonce each time: the same secret never stores the same.
        assert_ne!(stored, seal(Some(&k), &Secret::new(VALUE), &id));
    }

    #[test]
    fn a_wrong_key_fails_and_says_so() {
        let id = secret_identity("acme", 0);
        let stored = seal(Some(&key(HEX)), &Secret::new(VALUE), &id);
        let err = open(Some(&key(OTHER)), &stored, &id).unwrap_err();
        assert_eq!(err, OpenError::WrongKey);
        assert!(err.to_string().contains("does not match"));
        assert_eq!(open(None, &stored, &id).unwrap_err(), OpenError::KeyMissing);
    }

    #[test]
    fn a_swapped_identity_fails() {
        let k = key(HEX);
        let stored = seal(Some(&k), &Secret::new(VALUE), &secret_identity("acme", 0));
        for other in [secret_identity("acme", 1), secret_identity("other", 0)] {
            assert_eq!(
                open(Some(&k), &stored, &other).unwrap_err(),
                OpenError::WrongKey
            );
        }
    }

    #[test]
    fn tampered_or_truncated_ciphertext_fails() {
        let k = key(HEX);
        let id = secret_identity("acme", 0);
        let stored = seal(Some(&k), &Secret::new(VALUE), &id);
        let mut bytes = STANDARD.decode(&stored[3..]).unwrap();
        let last = bytes.len() - 1;
        for at in [0, NONCE_LEN, last] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            let tampered = format!("v1:{}", STANDARD.encode(&flipped));
            assert_eq!(
                open(Some(&k), &tampered, &id).unwrap_err(),
                OpenError::WrongKey
            );
        }
        bytes.truncate(NONCE_LEN + TAG_LEN - 1);
        let short = format!("v1:{}", STANDARD.encode(&bytes));
        assert_eq!(
            open(Some(&k), &short, &id).unwrap_err(),
            OpenError::Malformed
        );
        for junk in ["v1:***", "whsec_abc", ""] {
            assert_eq!(open(Some(&k), junk, &id).unwrap_err(), OpenError::Malformed);
        }
    }

    #[test]
    fn without_a_key_secrets_are_marked_plain() {
        let id = secret_identity("acme", 0);
        let stored = seal(None, &Secret::new(VALUE), &id);
        assert_eq!(stored, format!("plain:{VALUE}"));
        assert!(!is_encrypted(&stored));
        assert_eq!(open(None, &stored, &id).unwrap().expose(), VALUE);
        // A key given later still reads what was stored before it.
        assert_eq!(open(Some(&key(HEX)), &stored, &id).unwrap().expose(), VALUE);
    }

    #[test]
    fn keys_parse_from_64_hex_characters_only() {
        assert!(EncryptionKey::from_hex(HEX).is_ok());
        assert!(EncryptionKey::from_hex(&format!(" {} ", HEX.to_uppercase())).is_ok());
        assert_eq!(
            EncryptionKey::from_hex("abcd").unwrap_err(),
            KeyFormatError::Length(4)
        );
        let not_hex = format!("{}zz", &HEX[..62]);
        assert_eq!(
            EncryptionKey::from_hex(&not_hex).unwrap_err(),
            KeyFormatError::NotHex
        );
        let err = KeyFormatError::Length(3).to_string();
        assert!(
            err.contains("--encryption-key") && err.contains("64 hex"),
            "{err}"
        );
    }

    #[test]
    fn keys_never_print_themselves() {
        let k = key(HEX);
        for shown in [format!("{k}"), format!("{k:?}"), format!("{:?}", Some(&k))] {
            assert!(shown.contains(REDACTED), "{shown}");
            assert!(!shown.contains("0001"), "{shown}");
        }
    }
}
