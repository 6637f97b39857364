//! The embedded database on disk: private to the relay's user, and one relay
//! per data dir. SQLite only (the files under test are SQLite's).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use lobster_e2e::process::Proc;
use lobster_e2e::{ADMIN_TOKEN, WAIT, webhook_secret};

fn spawn_relay(data_dir: &Path) -> anyhow::Result<Proc> {
    let args: Vec<OsString> = vec![
        "server".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--webhook-secret".into(),
        webhook_secret().into(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    let env = [("RELAY_LOG_FORMAT".to_owned(), "json".to_owned())];
    Proc::spawn("relay", &args, &env)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Without `--encryption-key` the database holds secrets and every body in
/// the clear: nobody else on the machine may read it.
#[tokio::test]
async fn the_data_dir_and_database_files_are_private() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("new").join("data");
    let relay = spawn_relay(&data)?;
    relay.wait_for_stderr("relay listening", WAIT).await?;
    assert_eq!(mode(&data), 0o700, "data dir");
    for file in ["relay.db", "relay.db-wal", "relay.db-shm", "admin_token"] {
        let path = data.join(file);
        if file == "admin_token" && !path.exists() {
            continue; // given on the command line: nothing stored
        }
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    assert!(!relay.stderr.contains("readable by other users"));
    Ok(())
}

#[tokio::test]
async fn a_database_others_can_read_is_reported_at_start() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("data");
    let mut first = spawn_relay(&data)?;
    first.wait_for_stderr("relay listening", WAIT).await?;
    first.kill9().await?;
    std::fs::set_permissions(
        data.join("relay.db"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    let again = spawn_relay(&data)?;
    let line = again
        .wait_for_stderr("readable by other users", WAIT)
        .await?;
    assert!(line.contains("chmod 600"), "says what to do: {line}");
    again.wait_for_stderr("relay listening", WAIT).await?;
    Ok(())
}

/// Two relays on one SQLite database would each think they own every lease.
#[tokio::test]
async fn a_second_relay_on_the_same_data_dir_stops_with_a_clear_error() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("data");
    let mut first = spawn_relay(&data)?;
    first.wait_for_stderr("relay listening", WAIT).await?;

    let mut second = spawn_relay(&data)?;
    let status = second.wait_exit(WAIT).await?;
    second.stderr.wait_closed(WAIT).await;
    let stderr = second.stderr.tail(10);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another lobster-relay is already running"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The first one is unharmed; once it is gone (even by kill -9, which
    // leaves no chance to clean up) the data dir is free again.
    assert!(first.try_exit().is_none(), "the first relay still runs");
    first.kill9().await?;
    let third = spawn_relay(&data)?;
    third.wait_for_stderr("relay listening", WAIT).await?;
    Ok(())
}
