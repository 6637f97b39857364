//! Abuse limits: slow-loris headers and bodies, per-IP limits on failed
//! authentication and signatures (`X-Forwarded-For` only from trusted
//! proxies), and the cap on sessions per agent.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lobster_e2e::{
    Agent, Listener, Relay, RelayOpts, Sender, WAIT, accepted_id, eventually, relay_with_agent,
};
use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// A request with a bad key, claiming to come from `forwarded_for`.
async fn bad_key(relay: &Relay, forwarded_for: &str) -> anyhow::Result<reqwest::Response> {
    Ok(relay
        .http_client()
        .get(format!("{}/api/v1/agent/me", relay.url()))
        .bearer_auth("lr_wrong")
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await?)
}

async fn good_key(relay: &Relay, agent: &Agent, forwarded_for: &str) -> anyhow::Result<u16> {
    Ok(relay
        .http_client()
        .get(format!("{}/api/v1/agent/me", relay.url()))
        .bearer_auth(&agent.api_key)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn trickled_headers_are_cut_off_while_normal_requests_pass() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default().args(["--header-timeout", "1s"])).await?;
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", relay.port())).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let started = Instant::now();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // Meanwhile, a normal request is served.
    let answer = relay.request(Method::GET, "/healthz", None, None).await?;
    assert_eq!(answer.status, 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(
        closed.is_ok(),
        "the trickling client was never disconnected"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "disconnected after {elapsed:?}, expected about 1 s"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("200 OK"),
        "the slow request was served: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_silent_connection_is_cut_off_by_the_header_timeout() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default().args(["--header-timeout", "1s"])).await?;
    // Connects and never sends a byte.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", relay.port())).await?;
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, silent.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    assert!(closed.is_ok(), "the silent client was never disconnected");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "disconnected after {elapsed:?}, expected about 1 s"
    );
    Ok(())
}

#[tokio::test]
async fn a_trickled_body_gets_408_within_the_request_timeout() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(
        RelayOpts::default().args(["--request-timeout", "1s"]),
        "slow",
    )
    .await?;
    let path = format!("/api/v1/webhook/{}", agent.relay_id);
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", relay.port())).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer)).await??;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    // A WebSocket session outlives the request timeout.
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &[]).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await; // longer than the timeout on purpose
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, b"{}", &[])
            .await?,
    );
    assert!(listener.next_stdout_line(WAIT).await?.contains(&id));
    Ok(())
}

#[tokio::test]
async fn failed_authentications_get_one_ip_429_with_retry_after() -> anyhow::Result<()> {
    // Loopback is the trusted proxy, so X-Forwarded-For names the client.
    let opts = RelayOpts::default().args([
        "--auth-failure-limit",
        "2/m",
        "--trusted-proxies",
        "127.0.0.1/32,::1",
    ]);
    let (relay, agent) = relay_with_agent(opts, "limited").await?;
    let started = std::time::Instant::now();
    let attacker = "203.0.113.7";
    // A burst of twice the rate is allowed: 4 plain 401s.
    for _ in 0..4 {
        assert_eq!(bad_key(&relay, attacker).await?.status().as_u16(), 401);
    }
    let refused = bad_key(&relay, attacker).await?;
    assert_eq!(refused.status().as_u16(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "too_many_failures");
    // Only that client is refused...
    assert_eq!(bad_key(&relay, attacker).await?.status().as_u16(), 429);
    assert_eq!(
        bad_key(&relay, "198.51.100.9").await?.status().as_u16(),
        401
    );
    // ...and a valid key passes even from it: agents behind one NAT share
    // an address, and one misconfigured agent must not lock out the rest.
    assert_eq!(good_key(&relay, &agent, attacker).await?, 200);
    assert_eq!(good_key(&relay, &agent, "198.51.100.9").await?, 200);
    let sender = Sender::default();
    let ok = sender
        .post(
            &agent.webhook_url,
            b"{}",
            &[("x-forwarded-for", "198.51.100.9")],
        )
        .await?;
    accepted_id(&ok);
    // Webhook senders share addresses (GitHub, Stripe, NAT): forged
    // signatures and unknown relay ids from one address never cost a
    // validly signed webhook from it its 202.
    let shared = "192.0.2.44";
    let forged = Sender::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let unknown = agent.webhook_url.replace(&agent.relay_id, "rly_nobody");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let answer = forged
            .post(&agent.webhook_url, b"{}", &[("x-forwarded-for", shared)])
            .await?;
        statuses.push(answer.status);
        let answer = sender
            .post(&unknown, b"{}", &[("x-forwarded-for", shared)])
            .await?;
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [401, 404].repeat(10));
    let valid = sender
        .post(
            &agent.webhook_url,
            b"{\"n\":2}",
            &[("x-forwarded-for", shared)],
        )
        .await?;
    accepted_id(&valid);
    // The attacker is logged with its address, at most a line a second,
    // and so is its lockout.
    relay.wait_for_stderr("authentication failed", WAIT).await?;
    assert!(relay.stderr_contains(attacker), "the client IP is logged");
    assert!(!relay.stderr_contains("lr_wrong"), "never the key itself");
    let lockout = relay
        .wait_for_stderr("too many failed authentications", WAIT)
        .await?;
    assert!(lockout.contains(attacker), "{lockout}");
    let failure_lines = relay
        .stderr()
        .lines()
        .iter()
        .filter(|l| l.contains("authentication failed"))
        .count();
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        failure_lines <= seconds + 1,
        "{failure_lines} lines for 6 failures in {seconds} s: at most one a second"
    );
    Ok(())
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--auth-failure-limit", "2/m"]);
    let (relay, agent) = relay_with_agent(opts, "untrusted").await?;
    // Each request claims another address; all are the same peer.
    for i in 0..4 {
        let status = bad_key(&relay, &format!("203.0.113.{i}")).await?.status();
        assert_eq!(status.as_u16(), 401);
    }
    assert_eq!(
        bad_key(&relay, "203.0.113.99").await?.status().as_u16(),
        429
    );
    assert_eq!(good_key(&relay, &agent, "198.51.100.9").await?, 200);
    // A relay trusting some other proxy ignores the header from loopback too.
    let opts = RelayOpts::default().args([
        "--auth-failure-limit",
        "2/m",
        "--trusted-proxies",
        "10.0.0.0/8",
    ]);
    let (relay, agent) = relay_with_agent(opts, "other-proxy").await?;
    for i in 0..5 {
        let _ = bad_key(&relay, &format!("203.0.113.{i}")).await?;
    }
    assert_eq!(
        bad_key(&relay, "198.51.100.9").await?.status().as_u16(),
        429
    );
    assert_eq!(good_key(&relay, &agent, "198.51.100.9").await?, 200);
    Ok(())
}

/// Opens a raw WebSocket for the agent; the HTTP status of a refusal.
async fn try_session(relay: &Relay, agent: &Agent) -> anyhow::Result<Result<(), (u16, String)>> {
    let url = format!("{}/api/v1/agent/connect", relay.url().replace("http", "ws"));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.api_key).parse()?,
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, _)) => {
            // The ready frame proves the session started; then let it go.
            let _ = tokio::time::timeout(WAIT, ws.next()).await;
            Ok(Ok(()))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Ok(Err((response.status().as_u16(), body)))
        }
        Err(err) => Err(err.into()),
    }
}

#[tokio::test]
async fn sessions_per_agent_are_capped() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--max-sessions-per-agent", "2"]);
    let (relay, agent) = relay_with_agent(opts, "capped").await?;
    let mut first = Listener::ready(&relay.url(), &agent.api_key, &[]).await?;
    let _second = Listener::ready(&relay.url(), &agent.api_key, &[]).await?;
    let (status, body) = try_session(&relay, &agent)
        .await?
        .expect_err("a third session is refused");
    assert_eq!(status, 429);
    assert!(body.contains("too_many_sessions"), "{body}");
    // Another agent is not affected.
    let other = relay.create_agent("other").await?;
    assert_eq!(try_session(&relay, &other).await?, Ok(()));
    // When one session ends, a new one fits.
    first.kill9().await?;
    eventually("a place for a new session", WAIT, || async {
        try_session(&relay, &agent)
            .await?
            .map_err(|(status, body)| anyhow::anyhow!("{status} {body}"))
    })
    .await?;
    Ok(())
}
