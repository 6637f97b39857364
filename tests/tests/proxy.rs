//! The CLI behind an HTTP proxy: a real `tinyproxy` on loopback tunnels the
//! WebSocket of `listen` and `wait` (CONNECT) and carries the API calls.
//! Every delivery test also reads the proxy's log, so a CLI that bypassed
//! the proxy would fail it. The child environment has no proxy variable
//! but the ones a test sets (see `process.rs`), so `NO_PROXY` is unset.

use std::time::Duration;

use lobster_e2e::pki::TestCa;
use lobster_e2e::proxies::{Squid, Tinyproxy, TinyproxyOpts, have_squid, have_tinyproxy};
use lobster_e2e::{
    Agent, CliUser, Listener, Relay, RelayOpts, Sender, Sink, TlsOpts, WAIT, accepted_id,
    relay_with_agent,
};

fn opts(connect_ports: &[u16], auth: Option<(&str, &str)>) -> TinyproxyOpts {
    TinyproxyOpts {
        connect_ports: connect_ports.to_vec(),
        basic_auth: auth.map(|(user, password)| (user.to_owned(), password.to_owned())),
    }
}

/// Posts one webhook and waits for the sink to receive it.
async fn deliver_one(
    agent: &Agent,
    sender: &Sender,
    sink: &Sink,
    kind: &str,
) -> anyhow::Result<()> {
    let body = format!(r#"{{"type":"{kind}"}}"#);
    let id = accepted_id(
        &sender
            .post(&agent.webhook_url, body.as_bytes(), &[])
            .await?,
    );
    let received = sink
        .wait_until(&format!("event {id}"), WAIT, |reqs| {
            reqs.iter().any(|req| req.event_id() == Some(id.as_str()))
        })
        .await?;
    let req = received
        .iter()
        .find(|req| req.event_id() == Some(id.as_str()))
        .expect("found above");
    assert_eq!(req.body, body.as_bytes());
    Ok(())
}

#[tokio::test]
async fn listen_through_http_proxy_tunnels_the_websocket_and_sends_the_api_calls_there()
-> anyhow::Result<()> {
    if !have_tinyproxy("listen_through_http_proxy") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "proxied").await?;
    let relay_port = relay.port();
    let proxy = Tinyproxy::start(opts(&[relay_port], None)).await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/hook");
    let listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward, "--verbose"],
        &[("HTTP_PROXY", &proxy.url())],
    )
    .await?;
    listener.wait_ready().await?;

    let sender = Sender::default();
    for n in 0..3 {
        deliver_one(&agent, &sender, &sink, &format!("proxied.{n}")).await?;
    }
    let target = format!("127.0.0.1:{relay_port}");
    assert_eq!(
        proxy.connects(),
        std::slice::from_ref(&target),
        "one CONNECT tunnel to the relay carries the WebSocket; log:\n{}",
        proxy.log()
    );
    // The backlog question before connecting is a plain-HTTP API call: an
    // HTTP proxy gets it in absolute form.
    proxy
        .wait_for_log(&format!("GET http://{target}/api/v1/agent/me"), WAIT)
        .await?;
    assert!(
        listener
            .stderr()
            .contains(&format!("via proxy {} (from HTTP_PROXY)", proxy.url())),
        "--verbose names the proxy: {}",
        listener.stderr().tail(20)
    );
    // The forward target is local: never through the proxy.
    assert!(
        !proxy.log().contains(&format!(":{}", sink.port())),
        "{}",
        proxy.log()
    );
    Ok(())
}

#[tokio::test]
async fn wss_through_https_proxy_with_credentials_checks_the_ca_cert_inside_the_tunnel()
-> anyhow::Result<()> {
    if !have_tinyproxy("wss_through_https_proxy") {
        return Ok(());
    }
    let ca = TestCa::new("proxy e2e CA")?;
    let (cert, key) = ca.write("relay", &ca.server_cert(1)?)?;
    let relay = Relay::start(RelayOpts {
        tls: Some(TlsOpts {
            cert,
            key,
            ca_cert: ca.ca_cert.clone(),
        }),
        ..RelayOpts::default()
    })
    .await?;
    let agent = relay.create_agent("tls-proxied").await?;
    let proxy = Tinyproxy::start(opts(&[relay.port()], Some(("agent", "s3cret")))).await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/");
    let ca_cert = ca.ca_cert.display().to_string();
    // Lower case, and a proxy for plain http that must not be used.
    let env = [
        ("https_proxy", proxy.url_with("agent", "s3cret")),
        ("HTTP_PROXY", "http://127.0.0.1:9".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward, "--ca-cert", &ca_cert],
        &env,
    )
    .await?;
    listener.wait_ready().await?;
    let sender = Sender::default().with_client(relay.http_client());
    deliver_one(&agent, &sender, &sink, "tls.proxied").await?;
    let target = format!("127.0.0.1:{}", relay.port());
    // Both the API call and the WebSocket are CONNECT tunnels to an https
    // relay.
    let connects = proxy.connects();
    assert!(
        connects.len() >= 2 && connects.iter().all(|c| *c == target),
        "{connects:?}; log:\n{}",
        proxy.log()
    );

    // The same proxy without --ca-cert: TLS inside the tunnel is checked
    // against the platform roots, and fails.
    let user = CliUser::new()?.env("HTTPS_PROXY", &proxy.url_with("agent", "s3cret"));
    let run = user
        .run(&[
            "wait",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
            "--timeout",
            "20s",
        ])
        .await?;
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.stderr
    );
    assert!(
        proxy.connects().len() > connects.len(),
        "wait went through the proxy too"
    );
    Ok(())
}

#[tokio::test]
async fn wait_through_all_proxy_gets_the_next_event() -> anyhow::Result<()> {
    if !have_tinyproxy("wait_through_all_proxy") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait-proxied").await?;
    let proxy = Tinyproxy::start(opts(&[relay.port()], None)).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"wait.proxied"}"#, &[])
            .await?,
    );
    let user = CliUser::new()?.env("ALL_PROXY", &proxy.url());
    let run = user
        .run(&[
            "wait",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
            "--timeout",
            "30s",
        ])
        .await?;
    run.expect_code(0);
    assert!(run.stdout.contains(&id), "{}", run.stdout);
    assert_eq!(
        proxy.connects(),
        [format!("127.0.0.1:{}", relay.port())],
        "{}",
        proxy.log()
    );
    Ok(())
}

#[tokio::test]
async fn no_proxy_bypasses_a_proxy_that_is_not_even_running() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "bypass").await?;
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let sink = Sink::start().await?;
    let forward = sink.url("/");
    let listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward],
        &[
            ("HTTP_PROXY", dead.as_str()),
            ("ALL_PROXY", dead.as_str()),
            ("no_proxy", "example.com, 127.0.0.0/8"),
        ],
    )
    .await?;
    listener.wait_ready().await?;
    deliver_one(&agent, &Sender::default(), &sink, "bypassed").await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_with_its_variable() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "dead-proxy").await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let mut listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &[],
        &[("HTTP_PROXY", dead.as_str())],
    )
    .await?;
    let status = listener.wait_exit(WAIT).await?;
    let stderr = listener.stderr().tail(20);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the proxy {dead} (from HTTP_PROXY)")),
        "{stderr}"
    );
    assert!(stderr.contains("NO_PROXY"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn missing_or_wrong_proxy_credentials_are_an_auth_error() -> anyhow::Result<()> {
    if !have_tinyproxy("proxy_credentials") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "proxy-auth").await?;
    let proxy = Tinyproxy::start(opts(&[relay.port()], Some(("agent", "right")))).await?;
    let cases = [
        (
            proxy.url_with("agent", "wrong-pw"),
            "refused the proxy user and password from HTTP_PROXY",
            // tinyproxy answers a wrong password with 401, not 407.
            "(HTTP 401 Unauthorized)",
        ),
        (
            proxy.url(),
            "wants a user and password; none were set in HTTP_PROXY",
            "(HTTP 407 Proxy Authentication Required)",
        ),
    ];
    for (url, says, status_line) in cases {
        let mut listener = Listener::start_with_env(
            &relay.url(),
            &agent.api_key,
            &[],
            &[("HTTP_PROXY", url.as_str())],
        )
        .await?;
        let status = listener.wait_exit(WAIT).await?;
        let stderr = listener.stderr().tail(20);
        assert_eq!(
            status.code(),
            Some(3),
            "exit code 3, as for a refused key: {stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains(status_line), "{stderr}");
        assert!(
            !stderr.contains("wrong-pw"),
            "the password is never shown: {stderr}"
        );
    }
    // `wait` says the same.
    let user = CliUser::new()?.env("HTTP_PROXY", &proxy.url_with("agent", "wrong-pw"));
    let run = user
        .run(&["wait", "--relay", &relay.url(), "--api-key", &agent.api_key])
        .await?;
    run.expect_code(3);
    assert!(
        run.stderr.contains("refused the proxy user and password"),
        "{}",
        run.stderr
    );
    // And so do the API commands (reqwest's proxy path), by exit code 3 and
    // a message about the proxy, not about the API key.
    let login = user
        .run_with_stdin(
            &["login", "--api-key-stdin", "--relay", &relay.url()],
            format!("{}\n", agent.api_key).as_bytes(),
        )
        .await?;
    login.expect_code(3);
    assert!(
        login.stderr.contains(&format!(
            "the proxy {} (from HTTP_PROXY) refused GET /api/v1/agent/me",
            proxy.url()
        )),
        "{}",
        login.stderr
    );
    assert!(login.stderr.contains("USER:PASSWORD"), "{}", login.stderr);
    assert!(!login.stderr.contains("wrong-pw"), "{}", login.stderr);
    Ok(())
}

#[tokio::test]
async fn a_proxy_refusing_connect_to_the_relay_port_is_named_with_host_and_port()
-> anyhow::Result<()> {
    if !have_tinyproxy("proxy_refuses_connect") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "proxy-403").await?;
    // Tunnels only to 443, as many corporate proxies are set up. Only the
    // WebSocket: `auto` would fall back to SSE (tests/tests/fallback.rs).
    let proxy = Tinyproxy::start(opts(&[443], None)).await?;
    let mut listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--transport", "ws"],
        &[("HTTP_PROXY", proxy.url().as_str())],
    )
    .await?;
    let status = listener.wait_exit(WAIT).await?;
    let stderr = listener.stderr().tail(20);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let target = format!("127.0.0.1:{}", relay.port());
    assert!(
        stderr.contains(&format!(
            "the proxy {} (from HTTP_PROXY) refused a tunnel to {target} (HTTP 403",
            proxy.url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("NO_PROXY=127.0.0.1"), "{stderr}");
    Ok(())
}

/// `login` and the other API commands go through the proxy as well.
#[tokio::test]
async fn login_goes_through_the_proxy() -> anyhow::Result<()> {
    if !have_tinyproxy("login_goes_through_the_proxy") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "login-proxied").await?;
    let proxy = Tinyproxy::start(opts(&[relay.port()], None)).await?;
    let user = CliUser::new()?.env("HTTP_PROXY", &proxy.url());
    user.run_with_stdin(
        &["login", "--api-key-stdin", "--relay", &relay.url()],
        format!("{}\n", agent.api_key).as_bytes(),
    )
    .await?
    .expect_code(0);
    proxy
        .wait_for_log(
            &format!("GET http://127.0.0.1:{}/api/v1/agent/me", relay.port()),
            Duration::from_secs(5),
        )
        .await?;
    Ok(())
}

/// Squid, the other common proxy: the WebSocket tunnel and the API calls
/// go through it too. Its access log gets a tunnel's line once the tunnel
/// closes, so the listener is stopped before looking.
#[tokio::test]
async fn listen_through_squid_delivers() -> anyhow::Result<()> {
    if !have_squid("listen_through_squid_delivers") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "squid").await?;
    let squid = Squid::start(relay.port()).await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/");
    let mut listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward],
        &[("HTTP_PROXY", &squid.url())],
    )
    .await?;
    listener.wait_ready().await?;
    deliver_one(&agent, &Sender::default(), &sink, "squid.one").await?;
    let target = format!("127.0.0.1:{}", relay.port());
    squid
        .wait_for_access(&format!("GET http://{target}/api/v1/agent/me"), WAIT)
        .await?;
    listener.kill9().await?;
    let line = squid
        .wait_for_access(&format!("CONNECT {target}"), WAIT)
        .await?;
    assert!(line.contains("TCP_TUNNEL/200"), "{line}");
    Ok(())
}
