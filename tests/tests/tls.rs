//! TLS served by the relay itself: `listen` over `wss` with a private CA,
//! certificate errors, reloads on SIGHUP and on file change without
//! dropping sessions, start-up errors, and `healthcheck`.

use lobster_e2e::pki::{TestCa, served_cert};
use lobster_e2e::{
    CliUser, Listener, Relay, RelayOpts, Sender, TlsOpts, WAIT, accepted_id, eventually,
    relay_with_agent,
};

/// A relay serving TLS with a certificate of serial 1 from a fresh CA.
async fn tls_relay(ca: &TestCa, extra: &[&str]) -> anyhow::Result<(Relay, lobster_e2e::Agent)> {
    let (cert, key) = ca.write("relay", &ca.server_cert(1)?)?;
    let opts = RelayOpts {
        tls: Some(TlsOpts {
            cert,
            key,
            ca_cert: ca.ca_cert.clone(),
        }),
        ..RelayOpts::default()
    }
    .args(extra.iter().copied());
    relay_with_agent(opts, "tls-agent").await
}

fn ca_arg(ca: &TestCa) -> String {
    ca.ca_cert.display().to_string()
}

#[tokio::test]
async fn listen_over_wss_with_ca_cert_receives_an_event() -> anyhow::Result<()> {
    let ca = TestCa::new("lobster e2e CA")?;
    let (relay, agent) = tls_relay(&ca, &[]).await?;
    assert!(relay.url().starts_with("https://"));
    assert!(
        agent.reported_webhook_url.starts_with("https://127.0.0.1:"),
        "public URL defaults to https with TLS: {}",
        agent.reported_webhook_url
    );
    let mut listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--ca-cert", &ca_arg(&ca)]).await?;
    let sender = Sender::default().with_client(relay.http_client());
    let id = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"tls.hello"}"#, &[])
            .await?,
    );
    let line = listener.next_stdout_line(WAIT).await?;
    let event: serde_json::Value = serde_json::from_str(&line)?;
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["event_type"], "tls.hello");
    Ok(())
}

#[tokio::test]
async fn without_ca_cert_the_cli_fails_with_a_certificate_error() -> anyhow::Result<()> {
    let ca = TestCa::new("untrusted CA")?;
    let (relay, agent) = tls_relay(&ca, &[]).await?;
    let listener = Listener::start(&relay.url(), &agent.api_key, &[]).await?;
    let line = listener
        .stderr()
        .wait_for("certificate", WAIT)
        .await
        .map_err(|e| e.context("listen should say the certificate is not trusted"))?;
    assert!(
        line.contains("UnknownIssuer") || line.contains("issuer"),
        "{line}"
    );
    let user = CliUser::new()?;
    let run = user
        .run(&[
            "status",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
        ])
        .await?;
    run.expect_code(1);
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
    // And with the CA, the same command works.
    let run = user
        .run(&[
            "status",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
            "--ca-cert",
            &ca_arg(&ca),
        ])
        .await?;
    run.expect_code(0);
    Ok(())
}

#[tokio::test]
async fn a_missing_or_garbage_ca_file_is_a_usage_error() -> anyhow::Result<()> {
    let user = CliUser::new()?;
    let garbage = user.config_dir().join("garbage.pem");
    std::fs::write(&garbage, "hello\n")?;
    for (path, says) in [
        ("/nonexistent/ca.pem".to_owned(), "cannot read --ca-cert"),
        (garbage.display().to_string(), "no PEM certificate"),
    ] {
        let run = user
            .run(&[
                "status",
                "--relay",
                "https://127.0.0.1:1",
                "--ca-cert",
                &path,
            ])
            .await?;
        run.expect_code(2);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert!(run.stderr.lines().count() <= 2, "{}", run.stderr);
    }
    let run = CliUser::new()?
        .env("LOBSTER_RELAY_CA_CERT", "/nonexistent/ca.pem")
        .run(&["healthcheck"])
        .await?;
    run.expect_code(2);
    Ok(())
}

#[tokio::test]
async fn sighup_serves_the_new_certificate_while_a_session_stays_up() -> anyhow::Result<()> {
    let ca = TestCa::new("reload CA")?;
    // Polling off (an hour): only the signal reloads here.
    let (relay, agent) = tls_relay(&ca, &["--tls-reload-interval", "1h"]).await?;
    let first = ca.server_cert(1)?;
    let port = relay.port();
    let mut listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--ca-cert", &ca_arg(&ca)]).await?;
    // Same key pair file names; a fresh certificate (serial 2).
    let second = ca.server_cert(2)?;
    assert_ne!(served_cert(port, &ca.ca_cert).await?, second.der);
    ca.write("relay", &second)?;
    relay.signal("HUP")?;
    eventually("the relay to serve certificate 2", WAIT, || async {
        anyhow::ensure!(
            served_cert(port, &ca.ca_cert).await? == second.der,
            "old one"
        );
        Ok(())
    })
    .await?;
    assert_ne!(first.der, second.der);
    // The session opened before the reload still delivers.
    let sender = Sender::default().with_client(relay.http_client());
    let id = accepted_id(&sender.post(&agent.webhook_url, b"{}", &[]).await?);
    let line = listener.next_stdout_line(WAIT).await?;
    assert!(line.contains(&id), "{line}");
    assert_eq!(
        listener
            .stderr()
            .lines()
            .iter()
            .filter(|l| l.contains("Ready! Your webhook URL is"))
            .count(),
        1,
        "the listener never reconnected:\n{}",
        listener.stderr().tail(20)
    );
    // A reload that fails keeps the old certificate.
    std::fs::write(ca.dir().join("relay.crt"), "garbage")?;
    relay.signal("HUP")?;
    relay
        .wait_for_stderr("TLS certificate reload failed", WAIT)
        .await?;
    assert_eq!(served_cert(port, &ca.ca_cert).await?, second.der);
    Ok(())
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_by_polling() -> anyhow::Result<()> {
    let ca = TestCa::new("poll CA")?;
    let (relay, _agent) = tls_relay(&ca, &["--tls-reload-interval", "100ms"]).await?;
    let third = ca.server_cert(3)?;
    ca.write("relay", &third)?;
    eventually("the relay to serve certificate 3", WAIT, || async {
        anyhow::ensure!(
            served_cert(relay.port(), &ca.ca_cert).await? == third.der,
            "old one"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file() -> anyhow::Result<()> {
    let ca = TestCa::new("bad files CA")?;
    let (cert, key) = ca.write("good", &ca.server_cert(1)?)?;
    let (other_cert, _) = ca.write("other", &ca.server_cert(2)?)?;
    let garbage = ca.dir().join("garbage.pem");
    std::fs::write(&garbage, "not pem")?;
    let data = tempfile::tempdir()?;
    let user = CliUser::new()?;
    let show = |p: &std::path::Path| p.display().to_string();
    let cases = [
        (show(&garbage), show(&key), show(&garbage)),
        (show(&cert), show(&garbage), show(&garbage)),
        (
            show(&cert),
            "/nonexistent.key".to_owned(),
            "/nonexistent.key".to_owned(),
        ),
        (show(&other_cert), show(&key), "does not fit".to_owned()),
    ];
    for (tls_cert, tls_key, says) in cases {
        let run = user
            .run(&[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &show(data.path()),
                "--signature-scheme",
                "none",
                "--tls-cert",
                &tls_cert,
                "--tls-key",
                &tls_key,
            ])
            .await?;
        assert_ne!(run.code(), 0, "{}", run.stderr);
        assert!(
            run.stderr.contains(&says),
            "should name {says}: {}",
            run.stderr
        );
    }
    Ok(())
}

#[tokio::test]
async fn healthcheck_honours_ca_cert() -> anyhow::Result<()> {
    let ca = TestCa::new("healthcheck CA")?;
    let (relay, _agent) = tls_relay(&ca, &[]).await?;
    let url = format!("{}/readyz", relay.url());
    let user = CliUser::new()?;
    user.run(&["healthcheck", "--url", &url, "--ca-cert", &ca_arg(&ca)])
        .await?
        .expect_code(0);
    let run = user.run(&["healthcheck", "--url", &url]).await?;
    run.expect_code(1);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let missing = format!("{}/no-such-page", relay.url());
    let run = user
        .run(&["healthcheck", "--url", &missing, "--ca-cert", &ca_arg(&ca)])
        .await?;
    run.expect_code(1);
    assert!(run.stderr.contains("HTTP 404"), "{}", run.stderr);
    Ok(())
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off_by_the_header_timeout() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let ca = TestCa::new("handshake CA")?;
    let (relay, _agent) = tls_relay(&ca, &["--header-timeout", "1s"]).await?;
    // Connects and never says ClientHello.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", relay.port())).await?;
    let started = std::time::Instant::now();
    // Meanwhile, a real client is served.
    let url = format!("{}/healthz", relay.url());
    assert_eq!(relay.http_client().get(url).send().await?.status(), 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, silent.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    assert!(closed.is_ok(), "the silent client was never disconnected");
    assert!(
        elapsed >= std::time::Duration::from_millis(900)
            && elapsed < std::time::Duration::from_secs(4),
        "disconnected after {elapsed:?}, expected about 1 s"
    );
    Ok(())
}

/// The common self-signed one-liner marks its certificate as a CA, which
/// WebPKI refuses as a server's certificate (`CaUsedAsEndEntity`). Passing
/// exactly that certificate as `--ca-cert` must work for every connection
/// the CLI makes to the relay: REST and the WebSocket.
#[tokio::test]
async fn a_self_signed_certificate_passed_as_ca_cert_is_trusted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = lobster_e2e::pki::self_signed_like_openssl(dir.path(), "self")?;
    let relay = Relay::start(RelayOpts {
        tls: Some(TlsOpts {
            cert: cert.clone(),
            key,
            ca_cert: cert.clone(),
        }),
        ..RelayOpts::default()
    })
    .await?;
    let cert_arg = cert.display().to_string();
    let user = CliUser::new()?;
    let created = user
        .run(&[
            "admin",
            "create-agent",
            "pinned",
            "--relay",
            &relay.url(),
            "--admin-token",
            lobster_e2e::ADMIN_TOKEN,
            "--ca-cert",
            &cert_arg,
            "--json",
        ])
        .await?;
    let created = created.expect_code(0).json();
    let api_key = created["api_key"].as_str().unwrap_or_default().to_owned();
    let mut listener =
        Listener::ready(&relay.url(), &api_key, &["--ca-cert", &cert_arg, "--print"]).await?;
    let triggered = user
        .run(&[
            "trigger",
            "pinned.hello",
            "--relay",
            &relay.url(),
            "--api-key",
            &api_key,
            "--ca-cert",
            &cert_arg,
        ])
        .await?;
    let id = triggered.expect_code(0).stdout.trim().to_owned();
    let line = listener.next_stdout_line(WAIT).await?;
    let event: serde_json::Value = serde_json::from_str(&line)?;
    assert_eq!(event["id"], id.as_str());

    // Another self-signed certificate is still refused, and says it is TLS.
    let (other, _) = lobster_e2e::pki::self_signed_like_openssl(dir.path(), "other")?;
    let refused = user
        .run(&[
            "status",
            "--relay",
            &relay.url(),
            "--api-key",
            &api_key,
            "--ca-cert",
            &other.display().to_string(),
        ])
        .await?;
    refused.expect_code(1);
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);
    Ok(())
}

/// A local app on https with a self-signed certificate: without trust the
/// event line says the TLS handshake failed (not "is your app running?");
/// `--forward-insecure` forwards to it. The target here is a second relay
/// serving TLS, which answers a POST to /healthz with 405.
#[tokio::test]
async fn forward_insecure_reaches_a_self_signed_local_app() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = lobster_e2e::pki::self_signed_like_openssl(dir.path(), "app")?;
    let app = Relay::start(RelayOpts {
        tls: Some(TlsOpts {
            cert: cert.clone(),
            key,
            ca_cert: cert,
        }),
        ..RelayOpts::default()
    })
    .await?;
    let target = format!("https://localhost:{}/healthz", app.port());
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "fwd").await?;
    let sender = Sender::default();

    let listener = Listener::ready(&relay.url(), &agent.api_key, &["--forward", &target]).await?;
    accepted_id(&sender.post(&agent.webhook_url, b"{}", &[]).await?);
    let line = listener.stderr().wait_for("nacked", WAIT).await?;
    assert!(line.contains("TLS handshake"), "{line}");
    assert!(
        line.contains("--forward-insecure"),
        "says what to do: {line}"
    );
    drop(listener);

    let insecure = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &target, "--forward-insecure"],
    )
    .await?;
    let line = insecure.stderr().wait_for("405 POST", WAIT).await?;
    assert!(line.contains(&target), "{line}");
    drop(insecure);

    // The same certificate passed as --ca-cert is trusted for the local
    // app too, without --forward-insecure.
    let cert = dir.path().join("app.crt");
    let cert = cert.to_str().unwrap_or_default();
    let trusted = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &target, "--ca-cert", cert],
    )
    .await?;
    trusted.stderr().wait_for("405 POST", WAIT).await?;
    Ok(())
}

/// `--forward-insecure` is for the local app only: it never makes the CLI
/// accept a relay certificate it cannot verify.
#[tokio::test]
async fn forward_insecure_does_not_apply_to_the_relay() -> anyhow::Result<()> {
    let ca = TestCa::new("untrusted CA")?;
    let (relay, agent) = tls_relay(&ca, &[]).await?;
    let listener = Listener::start(
        &relay.url(),
        &agent.api_key,
        &[
            "--forward",
            "https://localhost:9/hooks",
            "--forward-insecure",
        ],
    )
    .await?;
    let line = listener
        .stderr()
        .wait_for("certificate", WAIT)
        .await
        .map_err(|e| e.context("listen should refuse the relay's certificate"))?;
    assert!(
        line.contains("UnknownIssuer") || line.contains("issuer"),
        "{line}"
    );
    Ok(())
}
