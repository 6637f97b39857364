//! Ids, API keys and tokens: what they look like and how they are checked.
//!
//! Every id carries a short type prefix (`evt_`, `agt_`, ...) so a value
//! pasted into the wrong place is recognisable at a glance, and so secret
//! scanners can match keys (`lrk_`, `lra_`) without false positives.
//!
//! Record ids (events, agents, sessions) are ULIDs: sortable by creation
//! time, which the event list relies on. Relay ids and keys are pure
//! randomness in lowercase Crockford base32, which survives URLs, shells and
//! being read aloud (no `i`, `l`, `o` or `u`).
//!
//! Ids have a type each ([`EventId`], [`AgentId`], [`SessionId`],
//! [`InstanceId`], [`RelayId`], and [`WorkspaceName`]), in `typed`.

use std::sync::{Mutex, PoisonError};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use ulid::{Generator, Ulid};

use crate::Secret;

mod typed;

pub use typed::{
    AgentId, EventId, IdError, InstanceId, RelayId, SessionId, WORKSPACE_NAME_MAX, WorkspaceName,
};

/// Prefix of event ids.
pub const EVENT_ID_PREFIX: &str = "evt_";
/// Prefix of agent ids.
pub const AGENT_ID_PREFIX: &str = "agt_";
/// Prefix of session ids.
pub const SESSION_ID_PREFIX: &str = "ses_";
/// Prefix of instance ids: a relay process among those sharing one database.
pub const INSTANCE_ID_PREFIX: &str = "ins_";
/// Prefix of relay ids, the public part of webhook URLs.
pub const RELAY_ID_PREFIX: &str = "rly_";
/// Prefix of agent API keys.
pub const API_KEY_PREFIX: &str = "lrk_";
/// Prefix of admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "lra_";

/// Lowercase Crockford base32.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 26 symbols of 5 bits: 130 random bits, above the contract's 128.
const RELAY_ID_SYMBOLS: usize = 26;
/// 52 symbols of 5 bits: 260 random bits, above the 256 asked for.
const KEY_SYMBOLS: usize = 52;
/// A whole CRC-32 in base32 (35 bits, the top 3 always zero). Keeping all 32
/// bits is what guarantees that any single typo is caught.
const CHECKSUM_SYMBOLS: usize = 7;

/// Length in characters of every relay id.
pub const RELAY_ID_LEN: usize = RELAY_ID_PREFIX.len() + RELAY_ID_SYMBOLS;
/// Length in characters of every API key.
pub const API_KEY_LEN: usize = API_KEY_PREFIX.len() + KEY_SYMBOLS + CHECKSUM_SYMBOLS;
/// Length in characters of every admin token.
pub const ADMIN_TOKEN_LEN: usize = ADMIN_TOKEN_PREFIX.len() + KEY_SYMBOLS;

/// One generator for the process, so ids made in the same millisecond still
/// sort in creation order (plain `Ulid::new()` would order them at random).
static ULIDS: Mutex<Generator> = Mutex::new(Generator::new());

/// A new agent API key: `lrk_` + 52 random symbols (260 bits) + a 7-symbol
/// CRC-32 of everything before it. See [`api_key_is_well_formed`].
pub fn api_key() -> Secret {
    let mut key = format!("{API_KEY_PREFIX}{}", random_symbols(KEY_SYMBOLS));
    key.push_str(&checksum(key.as_bytes()));
    Secret::new(key)
}

/// Whether `key` has the shape of an API key from [`api_key`]: prefix,
/// length, alphabet and checksum.
///
/// The relay calls this before any database lookup, so a mistyped or
/// truncated key gets a precise answer and costs nothing. The CRC-32 catches
/// every single-character substitution, insertion or deletion and every swap
/// of neighbours; it is no defence against forgery, which is the job of the
/// 260 random bits.
pub fn api_key_is_well_formed(key: &str) -> bool {
    let bytes = key.as_bytes();
    if bytes.len() != API_KEY_LEN || !bytes.starts_with(API_KEY_PREFIX.as_bytes()) {
        return false;
    }
    let (payload, sum) = bytes.split_at(API_KEY_LEN - CHECKSUM_SYMBOLS);
    let symbols = &bytes[API_KEY_PREFIX.len()..];
    symbols.iter().all(|b| ALPHABET.contains(b)) && checksum(payload).as_bytes() == sum
}

/// A new admin token: `lra_` + 52 random symbols (260 bits).
pub fn admin_token() -> Secret {
    Secret::new(format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        random_symbols(KEY_SYMBOLS)
    ))
}

/// How keys and tokens are stored: lowercase hex SHA-256.
///
/// A fast hash is enough because the input is 260 random bits, not a
/// password; there is nothing to brute-force.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn prefixed_ulid(prefix: &str) -> String {
    // A panic elsewhere while holding the lock leaves the generator intact,
    // so poisoning is no reason to stop issuing ids.
    let mut generator = ULIDS.lock().unwrap_or_else(PoisonError::into_inner);
    // Overflow needs 2^80 ids in one millisecond; a fresh ULID is then fine.
    let ulid = generator.generate().unwrap_or_else(|_| Ulid::new());
    format!("{prefix}{ulid}")
}

fn random_symbols(count: usize) -> String {
    let mut bytes = vec![0u8; count];
    // ThreadRng is a CSPRNG seeded from the OS. 256 is a multiple of 32, so
    // keeping the low 5 bits of each byte is uniform.
    rand::fill(bytes.as_mut_slice());
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect()
}

fn checksum(payload: &[u8]) -> String {
    let crc = crc32(payload);
    (0..CHECKSUM_SYMBOLS)
        .rev()
        .map(|i| char::from(ALPHABET[((crc >> (5 * i)) & 31) as usize]))
        .collect()
}

/// CRC-32 (IEEE), bit by bit: keys are short and this avoids a dependency.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn event_id() -> String {
        EventId::generate().into_string()
    }

    fn agent_id() -> String {
        AgentId::generate().into_string()
    }

    fn session_id() -> String {
        SessionId::generate().into_string()
    }

    fn instance_id() -> String {
        InstanceId::generate().into_string()
    }

    fn relay_id() -> String {
        RelayId::generate().into_string()
    }

    /// Name, generator, prefix, length.
    type Case = (&'static str, fn() -> String, &'static str, usize);

    fn generators() -> Vec<Case> {
        vec![
            ("event_id", event_id, EVENT_ID_PREFIX, 30),
            ("agent_id", agent_id, AGENT_ID_PREFIX, 30),
            ("session_id", session_id, SESSION_ID_PREFIX, 30),
            ("instance_id", instance_id, INSTANCE_ID_PREFIX, 30),
            ("relay_id", relay_id, RELAY_ID_PREFIX, RELAY_ID_LEN),
            (
                "api_key",
                || api_key().expose().to_owned(),
                API_KEY_PREFIX,
                63,
            ),
            (
                "admin_token",
                || admin_token().expose().to_owned(),
                ADMIN_TOKEN_PREFIX,
                56,
            ),
        ]
    }

    #[test]
    fn ids_have_prefix_length_and_are_unique() {
        for (name, generate, prefix, len) in generators() {
            let ids: Vec<String> = (0..2000).map(|_| generate()).collect();
            for id in &ids {
                assert!(id.starts_with(prefix), "{name}: {id}");
                assert_eq!(id.len(), len, "{name}: {id}");
                assert!(
                    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "{name}: {id}"
                );
            }
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{name} repeated itself");
        }
    }

    #[test]
    fn record_ids_are_ulids_in_creation_order() {
        for (name, generate) in [
            ("event_id", event_id as fn() -> String),
            ("agent_id", agent_id),
            ("session_id", session_id),
            ("instance_id", instance_id),
        ] {
            // Thousands of ids land in the same millisecond: order must hold anyway.
            let ids: Vec<String> = (0..5000).map(|_| generate()).collect();
            for pair in ids.windows(2) {
                assert!(pair[0] < pair[1], "{name}: {} then {}", pair[0], pair[1]);
            }
            assert!(
                Ulid::from_string(&ids[0][4..]).is_ok(),
                "{name}: {}",
                ids[0]
            );
        }
    }

    #[test]
    fn random_ids_use_lowercase_crockford() {
        for id in [
            relay_id(),
            api_key().expose().to_owned(),
            admin_token().expose().to_owned(),
        ] {
            assert!(id[4..].bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn generated_api_keys_are_well_formed() {
        for _ in 0..500 {
            let key = api_key();
            assert!(api_key_is_well_formed(key.expose()), "{}", key.expose());
        }
    }

    #[test]
    fn every_one_character_typo_is_rejected() {
        let key = api_key().expose().to_owned();
        let bytes = key.as_bytes();
        let mut typos = Vec::new();
        for i in 0..bytes.len() {
            for &c in ALPHABET.iter().chain(b"ABZ_-iloU") {
                if c != bytes[i] {
                    let mut typo = bytes.to_vec();
                    typo[i] = c;
                    typos.push(typo);
                }
            }
            let mut deleted = bytes.to_vec();
            deleted.remove(i);
            typos.push(deleted);
            let mut inserted = bytes.to_vec();
            inserted.insert(i, b'7');
            typos.push(inserted);
            if i + 1 < bytes.len() && bytes[i] != bytes[i + 1] {
                let mut swapped = bytes.to_vec();
                swapped.swap(i, i + 1);
                typos.push(swapped);
            }
        }
        for typo in typos {
            let typo = String::from_utf8(typo).unwrap();
            assert!(
                !api_key_is_well_formed(&typo),
                "accepted {typo} (from {key})"
            );
        }
    }

    #[test]
    fn malformed_keys_are_rejected_without_panicking() {
        let key = api_key().expose().to_owned();
        let cases = [
            String::new(),
            API_KEY_PREFIX.to_owned(),
            key.to_uppercase(),
            key.replacen(API_KEY_PREFIX, ADMIN_TOKEN_PREFIX, 1),
            admin_token().expose().to_owned(),
            format!("{key} "),
            format!(" {}", &key[..key.len() - 1]),
            format!("lrk_{}", "é".repeat(29) + "a"),
            "lrk_".to_owned() + &"0".repeat(59),
            "x".repeat(10_000),
        ];
        for case in cases {
            assert!(!api_key_is_well_formed(&case), "accepted {case:?}");
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn hash_key_is_lowercase_hex_sha256() {
        let cases = [
            (
                "",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (key, hash) in cases {
            assert_eq!(hash_key(key), hash);
        }
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        let cases: [(&[u8], &[u8], bool); 5] = [
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"a", false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(constant_time_eq(a, b), equal, "{a:?} vs {b:?}");
        }
    }
}
