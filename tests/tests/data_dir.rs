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

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (and a line saying so) where mounting is not allowed.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
            );
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros until the filesystem is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk: webhooks get 503 (never 202), `/readyz` says storage is
/// failing instead of "ok", and once space returns both recover by
/// themselves and a listener that stayed connected gets every accepted
/// event.
#[tokio::test]
async fn a_full_disk_is_reported_and_recovered_from_without_a_restart() -> anyhow::Result<()> {
    let Some(disk) = SmallDisk::mount("8m") else {
        return Ok(());
    };
    let data = disk.path().join("data");
    let relay = spawn_relay(&data)?;
    let line = relay.wait_for_stderr("relay listening", WAIT).await?;
    let port = lobster_e2e::relay::parse_port(&line).expect("a port");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{url}/api/v1/admin/agents"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "full"}))
        .send()
        .await?
        .json()
        .await?;
    let api_key = created["api_key"].as_str().unwrap_or_default().to_owned();
    let webhook = format!(
        "{url}/api/v1/webhook/{}",
        created["relay_id"].as_str().unwrap_or_default()
    );
    let sink = lobster_e2e::Sink::start().await?;
    let _listener =
        lobster_e2e::Listener::ready(&url, &api_key, &["--forward", &sink.url("/")]).await?;
    let sender = lobster_e2e::Sender::default();
    let mut accepted = vec![lobster_e2e::accepted_id(
        &sender.post(&webhook, br#"{"type":"before"}"#, &[]).await?,
    )];
    sink.wait_for(1, WAIT).await?;

    let filler = disk.fill();
    for n in 0..3 {
        let body = format!(r#"{{"type":"during","n":{n}}}"#);
        let answer = sender.post(&webhook, body.as_bytes(), &[]).await?;
        assert_eq!(answer.assert_error(503), "storage_unavailable");
    }
    let ready = http.get(format!("{url}/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await?;
    assert_eq!(body["storage"], "unreachable", "{body}");
    assert!(
        body["storage_error"]
            .as_str()
            .unwrap_or_default()
            .contains("full"),
        "{body}"
    );

    std::fs::remove_file(filler)?;
    lobster_e2e::eventually("/readyz to recover", WAIT, || async {
        let ready = http.get(format!("{url}/readyz")).send().await?;
        anyhow::ensure!(ready.status().as_u16() == 200, "{}", ready.status());
        Ok(())
    })
    .await?;
    for n in 0..3 {
        let body = format!(r#"{{"type":"after","n":{n}}}"#);
        accepted.push(lobster_e2e::accepted_id(
            &sender.post(&webhook, body.as_bytes(), &[]).await?,
        ));
    }
    let got = sink.wait_for(accepted.len(), WAIT).await?;
    let delivered: std::collections::HashSet<_> = got
        .iter()
        .filter_map(|r| r.event_id().map(str::to_owned))
        .collect();
    for id in &accepted {
        assert!(
            delivered.contains(id),
            "{id} was accepted but not delivered"
        );
    }
    Ok(())
}
