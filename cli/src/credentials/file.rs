//! `credentials.toml`: API keys in the config dir, where no OS keyring
//! works (headless Linux, containers, CI). One table per relay URL:
//!
//! ```toml
//! ["https://relay.example.com"]
//! api_key = "lrk_..."
//! ```
//!
//! Written atomically with mode 0600; removed when its last key goes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::files::{read_optional, write_private};

const HEADER: &str = "\
# lobster-relay API keys, one table per relay URL, written by `lobster-relay login`
# because no OS keyring was available. Keep this file private (mode 0600).
";

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    api_key: String,
}

type Keys = BTreeMap<String, Stored>;

fn load(path: &Path) -> anyhow::Result<Keys> {
    match read_optional(path)? {
        None => Ok(Keys::new()),
        Some(text) => toml::from_str(&text).map_err(|err| {
            let first = err.to_string();
            let first = first.lines().next().unwrap_or_default().to_owned();
            anyhow::anyhow!(
                "{} is not a valid credentials file ({first}); delete it and run \
                 `lobster-relay login` again",
                path.display()
            )
        }),
    }
}

fn save(path: &Path, keys: &Keys) -> anyhow::Result<()> {
    if keys.is_empty() {
        return match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("could not remove {}", path.display())),
        };
    }
    let body = toml::to_string(keys).context("encoding the credentials")?;
    write_private(path, &format!("{HEADER}\n{body}"))
}

/// The key stored for `account` (a relay URL).
pub fn get(path: &Path, account: &str) -> anyhow::Result<Option<String>> {
    Ok(load(path)?.remove(account).map(|stored| stored.api_key))
}

/// Stores `key` for `account`, keeping the other relays' keys.
pub fn set(path: &Path, account: &str, key: &str) -> anyhow::Result<()> {
    let mut keys = load(path)?;
    keys.insert(
        account.to_owned(),
        Stored {
            api_key: key.to_owned(),
        },
    );
    save(path, &keys)
}

/// Removes the key of `account`; false when there was none.
pub fn remove(path: &Path, account: &str) -> anyhow::Result<bool> {
    let mut keys = load(path)?;
    if keys.remove(account).is_none() {
        return Ok(false);
    }
    save(path, &keys)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_per_relay_and_the_file_goes_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        assert_eq!(get(&path, "http://a:1").unwrap(), None);
        set(&path, "http://a:1", "lrk_a").unwrap();
        set(&path, "https://b.example", "lrk_b").unwrap();
        set(&path, "http://a:1", "lrk_a2").unwrap();
        assert_eq!(get(&path, "http://a:1").unwrap().as_deref(), Some("lrk_a2"));
        assert_eq!(
            get(&path, "https://b.example").unwrap().as_deref(),
            Some("lrk_b")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# lobster-relay API keys"), "{text}");
        assert!(!crate::files::readable_by_others(&path));

        assert!(remove(&path, "http://a:1").unwrap());
        assert!(!remove(&path, "http://a:1").unwrap());
        assert!(path.exists());
        assert!(remove(&path, "https://b.example").unwrap());
        assert!(!path.exists(), "no keys, no file");
    }

    #[test]
    fn a_broken_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "not toml [").unwrap();
        let err = get(&path, "http://a:1").unwrap_err().to_string();
        assert!(err.contains("lobster-relay login"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
