//! Build facts for `lobster-relay version` and `--version` (src/version.rs):
//!
//! - `LOBSTER_RELAY_GIT_COMMIT`: `git rev-parse --short HEAD` of the
//!   checkout, else `unknown` (a source tarball, no git installed).
//! - `LOBSTER_RELAY_TARGET`: the target triple cargo builds for.
//! - `LOBSTER_RELAY_BUILD_DATE`: `YYYY-MM-DD` (UTC) from `SOURCE_DATE_EPOCH`
//!   when set (reproducible builds), else the commit's date, else today.
//!
//! Reruns only when HEAD moves (HEAD, the branch refs, packed-refs) or
//! `SOURCE_DATE_EPOCH` changes, never on an ordinary source edit, so it
//! recompiles this crate alone and only after a commit or checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    if commit.is_some() {
        watch_git_head();
    }
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            commit.as_ref()?;
            git(&["log", "-1", "--format=%ct", "HEAD"])?.parse().ok()
        })
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });

    println!(
        "cargo:rustc-env=LOBSTER_RELAY_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=LOBSTER_RELAY_TARGET={target}");
    println!("cargo:rustc-env=LOBSTER_RELAY_BUILD_DATE={}", ymd(date));
}

/// The trimmed stdout of a successful `git ARGS` run in this crate's
/// directory; `None` without git, outside a checkout, or on empty output.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Reruns this script when the commit changes: HEAD itself (a checkout),
/// the branch's loose ref and packed-refs (a commit). Works in worktrees
/// (`--git-path` resolves each file to where git keeps it). Only existing
/// paths: cargo treats a missing one as always changed.
fn watch_git_head() {
    let mut paths = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        paths.push(head);
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        paths.push(packed);
    }
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let loose = branch.and_then(|b| git(&["rev-parse", "--git-path", &b]));
    if let Some(loose) = loose.map(PathBuf::from) {
        // A branch only in packed-refs gets a loose file on its next
        // commit: then watch the folder it will appear in.
        let watched = if loose.exists() {
            Some(loose.as_path())
        } else {
            loose.parent()
        };
        paths.extend(watched.map(|p| p.display().to_string()));
    }
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    for path in paths {
        // `--git-path` answers relative to the directory git ran in.
        let path = match &manifest {
            Some(dir) if Path::new(&path).is_relative() => dir.join(&path),
            _ => PathBuf::from(&path),
        };
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Seconds since the epoch as a UTC date, `YYYY-MM-DD` (Howard Hinnant's
/// civil_from_days; no date crate in the build script).
fn ymd(epoch_seconds: i64) -> String {
    let z = epoch_seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
