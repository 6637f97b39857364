//! Finding the real `lobster-relay` binary, building it once per test process.
//!
//! Cargo builds only the test crate's own targets before running its tests,
//! so the binary may be missing or stale; `cargo build` is cheap when it is
//! already fresh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Overrides the binary: the tests then run it as is, without building.
pub const BIN_ENV: &str = "LOBSTER_RELAY_BIN";

/// The path of the `lobster-relay` binary the tests run.
///
/// Panics with the build's output when the build fails: no test can run then.
pub fn relay_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os(BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => build(),
    })
}

fn build() -> PathBuf {
    let profile_dir = profile_dir();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args([
        "build",
        "-q",
        "-p",
        "lobster-relay",
        "--bin",
        "lobster-relay",
    ]);
    // `cargo test --release` (or `--profile NAME`) runs from `target/NAME`.
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    // The test exe's target dir, so the binary lands where we look for it.
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd
        .output()
        .expect("could not run cargo to build lobster-relay; set LOBSTER_RELAY_BIN");
    assert!(
        out.status.success(),
        "building lobster-relay failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join(format!("lobster-relay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "cargo built lobster-relay but {} is missing",
        bin.display()
    );
    bin
}

/// `target/<profile>`: the test executable lives in `target/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    if deps.file_name().is_some_and(|name| name == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}
