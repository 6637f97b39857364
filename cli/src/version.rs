//! `lobster-relay version` and `--version`: the version, the git commit,
//! the target triple and the build date, set by `build.rs`.

use serde::Serialize;

use crate::ui::print_data;

/// The package version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short commit hash of the build, or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("LOBSTER_RELAY_GIT_COMMIT");
/// The target triple the binary was built for.
pub const TARGET: &str = env!("LOBSTER_RELAY_TARGET");
/// `YYYY-MM-DD`: `SOURCE_DATE_EPOCH`, else the commit's date, else the build day.
pub const BUILD_DATE: &str = env!("LOBSTER_RELAY_BUILD_DATE");

/// What `--version` prints after the program name:
/// `0.1.0 (commit 1a2b3c4, x86_64-unknown-linux-musl, built 2026-12-03)`.
pub const LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LOBSTER_RELAY_GIT_COMMIT"),
    ", ",
    env!("LOBSTER_RELAY_TARGET"),
    ", built ",
    env!("LOBSTER_RELAY_BUILD_DATE"),
    ")"
);

/// The `--json` form of `version`.
#[derive(Debug, Serialize)]
pub struct VersionInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub target: &'static str,
    pub build_date: &'static str,
}

/// This binary's build facts.
pub fn info() -> VersionInfo {
    VersionInfo {
        version: VERSION,
        git_commit: GIT_COMMIT,
        target: TARGET,
        build_date: BUILD_DATE,
    }
}

/// Runs `version`: the `--version` line, or one JSON object with `--json`.
pub fn run(json: bool) -> anyhow::Result<()> {
    if json {
        print_data(serde_json::to_string(&info())?)?;
    } else {
        print_data(format_args!("lobster-relay {LINE}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_fact() {
        for fact in [VERSION, GIT_COMMIT, TARGET, BUILD_DATE] {
            assert!(!fact.is_empty());
            assert!(LINE.contains(fact), "{fact} missing from {LINE}");
        }
        // YYYY-MM-DD
        let date: Vec<&str> = BUILD_DATE.split('-').collect();
        assert_eq!(date.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 2, 2]);
    }

    #[test]
    fn json_has_the_four_fields() {
        let value = serde_json::to_value(info()).unwrap();
        for key in ["version", "git_commit", "target", "build_date"] {
            assert!(value[key].is_string(), "{key}: {value}");
        }
    }
}
