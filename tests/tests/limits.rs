//! Resource and rate limits as an abusive client meets them: a chunked body
//! over `--max-body` that never ends, a burst of webhooks over one agent's
//! rate, an oversized WebSocket frame, and an API key in a query string.
//! (Slow-loris, per-IP failure limits and the session cap: `abuse.rs`.)

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use lobster_e2e::{
    Agent, Relay, RelayOpts, Sender, WAIT, accepted_id, new_message_id, now_unix, relay_with_agent,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The events the relay holds for `agent` (`GET /api/v1/agent/events`).
async fn stored_events(relay: &Relay, agent: &Agent) -> anyhow::Result<Vec<Value>> {
    let answer = relay
        .agent_get(&agent.api_key, "/api/v1/agent/events")
        .await?;
    anyhow::ensure!(
        answer.status == 200,
        "listing events: {} {}",
        answer.status,
        answer.text
    );
    answer.json["events"]
        .as_array()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no events array: {}", answer.text))
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body) from a raw
/// socket; returns the status, the head and the body.
async fn read_response(
    socket: &mut (impl tokio::io::AsyncRead + Unpin),
) -> anyhow::Result<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(
            n > 0,
            "connection closed before a whole response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status line: {head}"))?
        .parse()?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| anyhow::anyhow!("no content-length in {head}"))?;
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed inside the response body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    Ok((status, head, body))
}

#[tokio::test]
async fn a_chunked_body_over_max_body_gets_413_without_being_read_whole() -> anyhow::Result<()> {
    const LIMIT: usize = 16 * 1024;
    let (relay, agent) = relay_with_agent(
        RelayOpts::default().args(["--max-body", "16KiB"]),
        "chunked",
    )
    .await?;
    // Correctly signed for what would be the body, so only its size is wrong.
    let piece = vec![b'a'; 4096];
    let small = piece.clone();
    let chunks = 2 * LIMIT / piece.len(); // twice the limit, never finished
    let whole: Vec<u8> = piece.repeat(chunks);
    let (msg_id, ts) = (new_message_id(), now_unix());
    let signature = Sender::default().sign(&msg_id, ts, &whole);
    let mut socket = TcpStream::connect(("127.0.0.1", relay.port())).await?;
    let head = format!(
        "POST /api/v1/webhook/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\nwebhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n\
         webhook-signature: {signature}\r\n\r\n",
        agent.relay_id
    );
    socket.write_all(head.as_bytes()).await?;
    let (mut reader, mut writer) = socket.into_split();
    // The relay may answer and close while chunks are still going out, so
    // they are written beside the reading, and a refused write ends them.
    // No terminating `0\r\n\r\n`, and the write half is handed back to
    // stay open: the relay can only answer by stopping at the limit.
    let chunks_out = tokio::spawn(async move {
        let mut sent = 0;
        for _ in 0..chunks {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
            sent += 1;
        }
        (writer, sent)
    });
    let (status, head, body) = tokio::time::timeout(WAIT, read_response(&mut reader))
        .await
        .map_err(|_| anyhow::anyhow!("no answer to an unfinished chunked body over the limit"))??;
    let (writer, sent) = chunks_out.await?;
    assert!(sent * 4096 > LIMIT, "only {sent} chunks went out");
    assert_eq!(status, 413, "{head}{body}");
    let json: Value = serde_json::from_str(&body)
        .map_err(|err| anyhow::anyhow!("413 body is not JSON ({err}): {body}"))?;
    assert_eq!(json["error"]["code"], "payload_too_large", "{body}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    drop((reader, writer));

    assert!(
        stored_events(&relay, &agent).await?.is_empty(),
        "an oversized body stored an event"
    );
    // The relay still takes a webhook within the limit.
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, &small, &[])
            .await?,
    );
    let stored = stored_events(&relay, &agent).await?;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["id"], id.as_str());
    Ok(())
}

#[tokio::test]
async fn an_agent_over_its_rate_gets_429_with_retry_after_while_others_pass() -> anyhow::Result<()>
{
    // 2 per minute, burst twice that: 4 pass, then one every 30 s.
    const BURST: usize = 4;
    let opts = RelayOpts::default().args(["--agent-rate-limit", "2/m"]);
    let (relay, busy) = relay_with_agent(opts, "busy").await?;
    let quiet = relay.create_agent("quiet").await?;
    let sender = Sender::default();

    let mut accepted = 0;
    let mut refused = Vec::new();
    for _ in 0..(2 * BURST) {
        let answer = sender.post(&busy.webhook_url, b"{}", &[]).await?;
        match answer.status {
            202 => {
                accepted_id(&answer);
                accepted += 1;
            }
            429 => refused.push(answer),
            other => panic!("expected 202 or 429, got {other}: {}", answer.text),
        }
    }
    assert!(
        (BURST..=BURST + 1).contains(&accepted),
        "{accepted} webhooks accepted, the burst is {BURST}"
    );
    assert_eq!(refused.len(), 2 * BURST - accepted);
    for answer in &refused {
        assert_eq!(answer.assert_error(429), "rate_limited");
        let retry_after: u64 = answer
            .headers
            .get("retry-after")
            .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", answer.headers))
            .to_str()?
            .parse()?;
        assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    }

    // The other agent is not throttled, while the busy one still is.
    for _ in 0..BURST {
        accepted_id(&sender.post(&quiet.webhook_url, b"{}", &[]).await?);
    }
    sender
        .post(&busy.webhook_url, b"{}", &[])
        .await?
        .assert_error(429);
    // Only the accepted ones were stored.
    assert_eq!(stored_events(&relay, &busy).await?.len(), accepted);
    assert_eq!(stored_events(&relay, &quiet).await?.len(), BURST);
    Ok(())
}

/// A WebSocket session of `agent`, after its `ready` frame.
async fn session(relay: &Relay, agent: &Agent) -> anyhow::Result<Ws> {
    let url = format!("{}/api/v1/agent/connect", relay.url().replace("http", "ws"));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.api_key).parse()?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let ready = next_json(&mut ws).await?;
    anyhow::ensure!(ready["type"] == "ready", "first frame: {ready}");
    Ok(ws)
}

/// The next JSON text frame, skipping pings and pongs, within [`WAIT`].
async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no frame within {WAIT:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => anyhow::bail!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_agent_frame_closes_only_that_session() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "frames").await?;
    let mut first = session(&relay, &agent).await?;
    let mut second = session(&relay, &agent).await?;

    // A well-formed message (a nack of an event nobody holds) whose only
    // fault is its size: 100 KiB, over the relay's 64 KiB for agent frames.
    let nack = |reason: String| json!({"type": "nack", "id": "evt_none", "reason": reason});
    // The same message small is harmless: the second session says it first.
    second
        .send(Message::text(nack("small".into()).to_string()))
        .await?;
    let big = nack("x".repeat(100 * 1024)).to_string();
    assert!(big.len() > 100 * 1024);
    // The relay may cut the connection while the frame is still going out.
    let _ = first.send(Message::text(big)).await;

    // The relay says why (an `error` frame, then close 4008) as far as the
    // connection lets it: the rest of the big frame is still unread, so the
    // agent may see a reset instead.
    let ending = tokio::time::timeout(WAIT, async {
        loop {
            match first.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(text)))
                    if serde_json::from_str::<Value>(&text).is_ok_and(|frame| {
                        frame["type"] == "error" && frame["code"] == "protocol_violation"
                    }) => {}
                Some(Ok(Message::Close(frame))) => return format!("close frame {frame:?}"),
                Some(Ok(other)) => return format!("unexpected frame {other:?}"),
                Some(Err(err)) => return format!("error {err}"),
                None => return "end of stream".to_owned(),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the session with the oversized frame stayed open"))?;
    assert!(
        !ending.starts_with("unexpected frame"),
        "the relay answered the oversized frame instead of closing: {ending}"
    );
    // The relay logs why it closed the session.
    relay.wait_for_stderr("a frame over 64 KiB", WAIT).await?;

    // The other session of the same agent still gets and acks events.
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"after.big.frame"}"#, &[])
            .await?,
    );
    let event = next_json(&mut second).await?;
    assert_eq!(event["type"], "event", "{event}");
    assert_eq!(event["id"], id.as_str(), "{event}");
    assert_eq!(event["event_type"], "after.big.frame", "{event}");
    second
        .send(Message::text(json!({"type": "ack", "id": id}).to_string()))
        .await?;
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_api_key_in_the_query_string_is_refused() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "query").await?;
    let http = relay.http_client();
    let key = &agent.api_key;
    for path in ["/api/v1/agent/me", "/api/v1/agent/events"] {
        for param in ["api_key", "token", "access_token", "key"] {
            let url = format!("{}{path}?{param}={key}", relay.url());
            let answer = http.get(&url).send().await?;
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 401, "{path}?{param}=<key>: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            assert!(
                !body.to_string().contains(key.as_str()),
                "the error echoes the key: {body}"
            );
        }
    }
    // Nor does a WebSocket session start with the key in the URL.
    let url = format!(
        "{}/api/v1/agent/connect?api_key={key}",
        relay.url().replace("http", "ws")
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        Ok(_) => panic!("a session started with the API key in the query string"),
        Err(err) => panic!("expected a 401 refusal, got {err}"),
    }
    // The same key in the header is good: it was refused for where it was.
    let answer = relay.agent_get(key, "/api/v1/agent/me").await?;
    assert_eq!(answer.status, 200, "{}", answer.text);
    Ok(())
}

/// An agent that never drains its queue cannot fill the disk for everyone:
/// past `--agent-max-pending` its webhooks get `429 agent_queue_full`
/// (nothing stored), and once a listener drains the queue they are
/// accepted again. The count is cached for a second, so the cap may be
/// overshot by what arrives in that second.
#[tokio::test]
async fn an_agent_over_its_pending_cap_gets_429_until_its_queue_drains() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--agent-max-pending", "5"]);
    let (relay, agent) = relay_with_agent(opts, "capped").await?;
    let sender = Sender::default();
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let refusal = loop {
        anyhow::ensure!(started.elapsed() < WAIT, "no 429 after {accepted} webhooks");
        let body = format!(r#"{{"type":"fill","n":{accepted}}}"#);
        let answer = sender
            .post(&agent.webhook_url, body.as_bytes(), &[])
            .await?;
        if answer.status == 429 {
            break answer;
        }
        accepted_id(&answer);
        accepted += 1;
    };
    assert_eq!(
        refusal.json["error"]["code"], "agent_queue_full",
        "{}",
        refusal.text
    );
    assert!(refusal.text.contains("limit is 5"), "{}", refusal.text);
    assert!(accepted >= 5, "{accepted}");
    let me = relay.agent_get(&agent.api_key, "/api/v1/agent/me").await?;
    assert_eq!(
        me.json["pending_events"], accepted,
        "the refused one was not stored"
    );

    let _listener =
        lobster_e2e::Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    lobster_e2e::eventually("the queue to drain and ingest to resume", WAIT, || async {
        let answer = sender
            .post(&agent.webhook_url, br#"{"type":"after.drain"}"#, &[])
            .await?;
        anyhow::ensure!(answer.status == 202, "{}", answer.text);
        Ok(())
    })
    .await?;
    Ok(())
}

/// An agent that closes politely gets the relay's Close back (RFC 6455
/// 5.5.1), so it sees its own code, not an abnormal 1006.
#[tokio::test]
async fn the_relay_answers_an_agents_close_frame() -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let (relay, agent) = relay_with_agent(RelayOpts::default(), "polite").await?;
    let mut ws = session(&relay, &agent).await?;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await?;
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(anyhow::anyhow!("no Close frame back: {err}")),
                None => return Err(anyhow::anyhow!("closed without a Close frame")),
            }
        }
    })
    .await??;
    let code = answer.map(|frame| frame.code);
    assert_eq!(code, Some(CloseCode::Normal));
    Ok(())
}

/// Idle connections cannot exhaust the relay's file descriptors: at
/// `--max-connections` it sheds idle keep-alive connections to make room,
/// so a webhook still gets its 202 at once. The relay's open-files limit is
/// cut to 120 under it (prlimit) and idle connections are not timed out
/// meanwhile (`--header-timeout 60s`): without the cap, accept fails
/// (EMFILE) and the webhook waits for a descriptor that never comes.
#[tokio::test]
async fn idle_connections_are_shed_at_the_cap_so_webhooks_still_get_in() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--max-connections", "32", "--header-timeout", "60s"]);
    let (relay, agent) = relay_with_agent(opts, "crowded").await?;
    relay
        .wait_for_stderr("\"max_connections\":32", WAIT)
        .await?;
    let pid = relay.pid().context("the relay runs")?;
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=120:120"])
        .status()
        .context("prlimit (util-linux) is needed")?;
    anyhow::ensure!(limited.success(), "prlimit failed");

    let addr = format!("127.0.0.1:{}", relay.port());
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(&addr).await?);
    }
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Sender::default().post(&agent.webhook_url, br#"{"type":"crowded"}"#, &[]),
    )
    .await
    .context("the webhook timed out: no descriptor left to accept it")??;
    accepted_id(&answer);
    drop(idle);
    Ok(())
}
