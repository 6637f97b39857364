//! `config.toml`: the default relay and the defaults of `listen`.
//!
//! ```toml
//! relay = "https://relay.example.com"   # written by `lobster-relay login`
//!
//! [listen]
//! forward = ["message.*=localhost:3000/messages", "localhost:3000/other"]
//! events = "message.*,ping"
//! headers = ["X-Env: dev"]
//! concurrency = 4
//! forward-timeout = "10s"
//! ```
//!
//! Flags and environment variables beat the file; a `listen` flag replaces
//! the file's value of the same name whole (one `--forward` on the command
//! line drops every `forward` of the file). Unknown keys are an error, so a
//! typo does not pass silently.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::Url;
use serde::Deserialize;

use crate::agent::transport::TransportChoice;
use crate::exit::Fatal;
use crate::files::{read_optional, write_private};
use crate::glob::GlobList;
use crate::global::parse_relay_url;
use crate::listen::headers::ExtraHeader;
use crate::listen::route::Route;

/// The parsed and validated `config.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The relay used when neither `--relay` nor `LOBSTER_RELAY_URL` names one.
    pub relay: Option<Url>,
    /// Defaults for `listen`.
    pub listen: ListenDefaults,
}

/// The `[listen]` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenDefaults {
    pub forward: Vec<Route>,
    pub events: Option<GlobList>,
    pub headers: Vec<ExtraHeader>,
    pub concurrency: Option<u32>,
    pub forward_timeout: Option<Duration>,
    /// `auto`, `ws`, `sse` or `poll`: `listen`'s `--transport`.
    pub transport: Option<TransportChoice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    relay: Option<String>,
    #[serde(default)]
    listen: RawListen,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawListen {
    forward: Option<OneOrMany>,
    events: Option<OneOrMany>,
    #[serde(alias = "header")]
    headers: Option<OneOrMany>,
    concurrency: Option<u32>,
    #[serde(alias = "forward_timeout")]
    forward_timeout: Option<String>,
    transport: Option<String>,
}

/// `key = "a"` or `key = ["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match read_optional(path)? {
            Some(text) => Self::parse(&text).map_err(|reason| {
                Fatal::usage(
                    format!("{} is not valid: {reason}", path.display()),
                    "fix the file (see `lobster-relay listen --help` for the keys) or delete it",
                )
                .into()
            }),
            None => Ok(Self::default()),
        }
    }

    /// Parses and validates the text of a `config.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| one_line(&err.to_string()))?;
        let relay = raw
            .relay
            .map(|url| parse_relay_url(&url).map_err(|err| format!("relay: {err}")))
            .transpose()?;
        let listen = raw.listen;
        let forward = listen
            .forward
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|route| Route::parse(route).map_err(|err| format!("listen.forward: {err}")))
            .collect::<Result<_, _>>()?;
        let events = listen
            .events
            .map(|events| {
                GlobList::parse(&events.into_vec().join(","))
                    .map_err(|err| format!("listen.events: {err}"))
            })
            .transpose()?;
        let headers = listen
            .headers
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|header| {
                ExtraHeader::parse(header).map_err(|err| format!("listen.headers: {err}"))
            })
            .collect::<Result<_, _>>()?;
        if listen.concurrency == Some(0) {
            return Err("listen.concurrency: must be at least 1".into());
        }
        let forward_timeout = listen
            .forward_timeout
            .map(|text| {
                crate::duration::parse(&text)
                    .map_err(|err| format!("listen.forward-timeout: {err}"))
            })
            .transpose()?;
        let transport = listen
            .transport
            .map(|text| {
                TransportChoice::parse(&text).map_err(|err| format!("listen.transport: {err}"))
            })
            .transpose()?;
        Ok(Self {
            relay,
            listen: ListenDefaults {
                forward,
                events,
                headers,
                concurrency: listen.concurrency,
                forward_timeout,
                transport,
            },
        })
    }
}

/// Sets the top-level `relay` of the file at `path`, keeping everything else
/// (comments included) as it was.
pub fn save_default_relay(path: &Path, relay: &Url) -> anyhow::Result<()> {
    let old = read_optional(path)?.unwrap_or_default();
    let new = with_relay(&old, relay_text(relay));
    write_private(path, &new).context("saving the default relay")
}

/// The relay URL as written in files: no trailing slash on a bare host.
pub fn relay_text(relay: &Url) -> &str {
    let text = relay.as_str();
    if relay.path() == "/" && relay.query().is_none() {
        text.trim_end_matches('/')
    } else {
        text
    }
}

/// `text` with its top-level `relay = ...` line replaced, or one added at
/// the top. Edits by line so comments survive; falls back to a rewrite when
/// the result would not parse or not say `relay`.
fn with_relay(text: &str, relay: &str) -> String {
    let line = format!("relay = {}", toml_string(relay));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let top_level_end = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let existing = lines[..top_level_end].iter().position(|l| {
        let l = l.trim_start();
        l.strip_prefix("relay")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    match existing {
        Some(at) => lines[at] = line,
        None => lines.insert(0, line),
    }
    let mut edited = lines.join("\n");
    edited.push('\n');
    let says_relay = toml::from_str::<toml::Table>(&edited)
        .ok()
        .and_then(|table| {
            table
                .get("relay")
                .and_then(|v| v.as_str().map(str::to_owned))
        })
        .is_some_and(|value| value == relay);
    if says_relay {
        return edited;
    }
    let mut table = toml::from_str::<toml::Table>(text).unwrap_or_default();
    table.insert("relay".into(), toml::Value::String(relay.into()));
    toml::to_string(&table).unwrap_or(format!("{}\n", edited.trim_end()))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A toml error on one line: where, then why, without the quoted source
/// line and its `^^^` (the reason comes after them, and was cut off when the
/// first two lines were kept).
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_source_excerpt(line))
        .collect::<Vec<_>>()
        .join(": ")
}

/// `2 | forwrd = "x"`, `|` and `^^^^^^` in toml's error text.
fn is_source_excerpt(line: &str) -> bool {
    let numbered = line
        .split_once('|')
        .is_some_and(|(number, _)| number.trim().chars().all(|c| c.is_ascii_digit()));
    numbered || line.chars().all(|c| "|^ ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn every_key_parses() {
        let config = Config::parse(
            r#"
relay = "http://127.0.0.1:8080"
[listen]
forward = ["message.*=localhost:3000/m", "3000"]
events = "message.*, ping"
headers = ["X-Env: dev"]
concurrency = 4
forward-timeout = "10s"
transport = "sse"
"#,
        )
        .unwrap();
        assert_eq!(config.relay.unwrap().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.listen.forward.len(), 2);
        assert!(config.listen.events.unwrap().matches("ping"));
        assert_eq!(config.listen.headers[0].name, "x-env");
        assert_eq!(config.listen.concurrency, Some(4));
        assert_eq!(config.listen.forward_timeout, Some(Duration::from_secs(10)));
        assert_eq!(config.listen.transport, Some(TransportChoice::Sse));
    }

    #[test]
    fn single_values_and_lists_both_work() {
        let config = Config::parse(
            "[listen]\nforward = \"localhost:3000\"\nevents = [\"a.*\", \"b\"]\nheader = \"X-A: 1\"\n",
        )
        .unwrap();
        assert_eq!(config.listen.forward.len(), 1);
        assert!(config.listen.events.as_ref().unwrap().matches("b"));
        assert_eq!(config.listen.headers.len(), 1);
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, key) in [
            ("relay = \"ftp://x\"", "relay"),
            ("[listen]\nforward = \"ftp://x\"", "listen.forward"),
            ("[listen]\nheaders = [\"nocolon\"]", "listen.headers"),
            (
                "[listen]\nforward-timeout = \"soon\"",
                "listen.forward-timeout",
            ),
            ("[listen]\nconcurrency = 0", "listen.concurrency"),
            ("[listen]\ntransport = \"smoke\"", "listen.transport"),
            ("[listen]\nforwad = \"3000\"", "forwad"),
            ("relay = ", ""),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn saving_the_relay_keeps_comments_and_other_keys() {
        let old =
            "# my setup\nrelay = \"http://old:1\" # old\n\n[listen]\n# app\nforward = \"3000\"\n";
        let new = with_relay(old, "http://new:2");
        assert!(new.contains("# my setup"), "{new}");
        assert!(new.contains("# app"), "{new}");
        let config = Config::parse(&new).unwrap();
        assert_eq!(config.relay.unwrap().as_str(), "http://new:2/");
        assert_eq!(config.listen.forward.len(), 1);

        let added = with_relay("[listen]\nevents = \"a\"\n", "https://r.example");
        assert!(
            added.starts_with("relay = \"https://r.example\"\n"),
            "{added}"
        );
        assert_eq!(with_relay("", "http://x:1"), "relay = \"http://x:1\"\n");
        // A `relay` inside a table is not the top-level one.
        let nested = with_relay("[listen]\nrelay = 1\n", "http://x:1");
        assert!(toml::from_str::<toml::Table>(&nested).is_ok(), "{nested}");
    }

    #[test]
    fn relay_urls_are_written_without_a_trailing_slash() {
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(relay_text(&url), "http://127.0.0.1:8080");
        let url = Url::parse("https://x.example/base/").unwrap();
        assert_eq!(relay_text(&url), "https://x.example/base/");
    }

    #[test]
    fn load_and_save_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        save_default_relay(&path, &url).unwrap();
        assert_eq!(Config::load(&path).unwrap().relay, Some(url));
        std::fs::write(&path, "relay = [").unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(crate::report::exit_code(&err), crate::exit::ExitCode::Usage);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let reason = Config::parse("[listen]\nforwrd = \"localhost:3000\"\n").unwrap_err();
        assert!(reason.starts_with("TOML parse error at line 2"), "{reason}");
        assert!(reason.contains("unknown field `forwrd`"), "{reason}");
        assert!(!reason.contains('^') && !reason.contains("2 |"), "{reason}");
    }
}
