//! The admin dashboard in a real browser: headless Chromium (Debian's
//! `chromium`) driven over the DevTools protocol against the real relay.
//!
//! Screenshots of every page go to `$DASHBOARD_SCREENSHOTS` when it is set
//! (`scripts/dashboard-screenshots.sh` points it at `docs/dashboard/`), else
//! to a temporary directory: they are taken either way, so the capture path
//! is tested too.

use std::path::PathBuf;
use std::time::Instant;

use lobster_e2e::browser::{Browser, Page};
use lobster_e2e::{
    ADMIN_TOKEN, Listener, Relay, RelayOpts, Sender, Sink, WAIT, accepted_id, post_signed,
};
use serde_json::json;

fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("DASHBOARD_SCREENSHOTS") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("creating the screenshot dir");
            (dir.into(), None)
        }
        None => {
            let tmp = tempfile::tempdir().expect("temp dir");
            (tmp.path().to_owned(), Some(tmp))
        }
    }
}

/// A JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

async fn login(page: &Page, relay: &Relay, token: &str) -> anyhow::Result<()> {
    page.goto(&format!("{}/dashboard/login", relay.url()))
        .await?;
    page.and_wait_load(&format!(
        "document.querySelector('input[name=token]').value = {}; \
         document.querySelector('form').requestSubmit(); true",
        js(token)
    ))
    .await
}

/// Confirmation dialogs are accepted, as an operator clicking OK would.
async fn accept_dialogs(page: &Page) -> anyhow::Result<()> {
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": "window.confirm = () => true;"}),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_follows_an_event_replays_it_and_logs_out() -> anyhow::Result<()> {
    let started = Instant::now();
    let (shots, _keep) = screenshot_dir();
    let relay = Relay::start(RelayOpts::default().args(["--retry-max-attempts", "1"])).await?;
    let agent = relay.create_agent("billing-<b>bot</b>").await?;
    let sink = Sink::start().await?;
    sink.respond_with(|_, _| 500);
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.url("/hooks")],
    )
    .await?;

    let browser = Browser::start().await?;
    let page = browser.new_page().await?;
    accept_dialogs(&page).await?;

    // Not logged in: every page leads to the login form.
    page.goto(&format!("{}/dashboard/agents", relay.url()))
        .await?;
    page.wait_for("location.pathname === '/dashboard/login'", WAIT)
        .await?;
    page.screenshot(&shots.join("login.png")).await?;

    // A wrong token is refused and gets no session.
    login(&page, &relay, "not-the-admin-token").await?;
    assert!(
        page.text().await?.contains("wrong admin token"),
        "{}",
        page.text().await?
    );
    page.goto(&format!("{}/dashboard", relay.url())).await?;
    page.wait_for("location.pathname === '/dashboard/login'", WAIT)
        .await?;

    // The right one opens the overview, whose figures update from /metrics.
    login(&page, &relay, ADMIN_TOKEN).await?;
    page.wait_for("location.pathname === '/dashboard'", WAIT)
        .await?;
    page.wait_for(
        "document.querySelector('[data-stat=ingest_rate]').textContent !== '…'",
        WAIT,
    )
    .await?;
    let cookies = page.call("Network.getCookies", json!({})).await?;
    let cookie = cookies["cookies"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "lobster_dashboard"))
        .cloned()
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");

    // The agent the test created is listed, its name shown as text.
    page.goto(&format!("{}/dashboard/agents", relay.url()))
        .await?;
    let text = page.text().await?;
    assert!(text.contains("billing-<b>bot</b>"), "{text}");
    assert_eq!(
        page.eval("document.querySelectorAll('main b').length")
            .await?,
        json!(0)
    );
    page.screenshot(&shots.join("agents.png")).await?;

    // An event shows up in the live tail as it arrives.
    page.goto(&format!("{}/dashboard/tail", relay.url()))
        .await?;
    page.wait_for(
        "document.getElementById('tail-state').textContent.startsWith('Live')",
        WAIT,
    )
    .await?;
    let body = br#"{"type":"invoice.paid","note":"<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"}"#;
    let id = accepted_id(&post_signed(&agent.webhook_url, body, &[]).await?);
    page.wait_for(
        &format!(
            "document.getElementById('tail').innerText.includes({})",
            js(&id)
        ),
        WAIT,
    )
    .await?;
    page.screenshot(&shots.join("tail.png")).await?;

    // The local app answers 500, and one attempt is the budget: it fails.
    relay
        .wait_event_status(&agent.api_key, &id, "failed", WAIT)
        .await?;

    // Its detail, opened from the tail, shows the body as text.
    page.and_wait_load(&format!(
        "document.querySelector('#tail a[href$=' + {} + ']').click(); true",
        js(&js(&id))
    ))
    .await?;
    page.wait_for("location.pathname.startsWith('/dashboard/events/')", WAIT)
        .await?;
    let raw = page
        .eval("document.getElementById('body-raw').textContent")
        .await?;
    assert_eq!(raw, json!(String::from_utf8_lossy(body)));
    assert_eq!(
        page.eval("document.querySelectorAll('pre script, pre img').length")
            .await?,
        json!(0)
    );
    assert_eq!(
        page.eval("window.__pwned === undefined").await?,
        json!(true)
    );
    let text = page.text().await?;
    assert!(
        text.contains("invoice.paid") && text.contains("failed"),
        "{text}"
    );
    assert!(
        text.contains("\"type\": \"invoice.paid\""),
        "the pretty JSON view: {text}"
    );
    page.screenshot(&shots.join("event.png")).await?;

    // Replay it: this time the local app takes it.
    sink.respond_with(|_, _| 200);
    page.and_wait_load("document.getElementById('replay').click(); true")
        .await?;
    assert!(
        page.text().await?.contains("queued again"),
        "{}",
        page.text().await?
    );
    sink.wait_until("the replayed event answered 200", WAIT, |requests| {
        requests
            .iter()
            .any(|r| r.event_id() == Some(id.as_str()) && r.status == 200)
    })
    .await?;
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    page.goto(&format!("{}/dashboard/events/{id}", relay.url()))
        .await?;
    assert_eq!(
        page.eval("document.getElementById('event-status').textContent")
            .await?,
        json!("delivered")
    );

    // The listing filters by status; the workspaces page lists `default`.
    page.goto(&format!(
        "{}/dashboard/events?status=delivered&type=invoice.*",
        relay.url()
    ))
    .await?;
    assert!(page.text().await?.contains(&id));
    page.screenshot(&shots.join("events.png")).await?;
    page.goto(&format!("{}/dashboard/events?status=failed", relay.url()))
        .await?;
    assert!(!page.text().await?.contains(&id));
    page.goto(&format!("{}/dashboard/workspaces", relay.url()))
        .await?;
    assert!(page.text().await?.contains("default"));
    page.screenshot(&shots.join("workspaces.png")).await?;
    page.viewport(Some((390, 844, true))).await?;
    page.goto(&format!("{}/dashboard/events/{id}", relay.url()))
        .await?;
    page.screenshot(&shots.join("event-phone.png")).await?;
    page.viewport(None).await?;

    // The overview counts what happened.
    page.goto(&format!("{}/dashboard", relay.url())).await?;
    page.wait_for(
        "document.querySelector('[data-stat=ingested_total]').textContent === '1' \
         && document.querySelector('[data-stat=delivery_rate]').textContent !== '…'",
        WAIT,
    )
    .await?;
    page.screenshot(&shots.join("overview.png")).await?;

    // A state-changing request without the session's CSRF token is refused.
    let session = format!(
        "lobster_dashboard={}",
        cookie["value"].as_str().unwrap_or_default()
    );
    let forged = relay
        .http_client()
        .post(format!("{}/dashboard/agents", relay.url()))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=forged")
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    let agents = relay
        .request(
            reqwest::Method::GET,
            "/api/v1/admin/agents",
            Some(ADMIN_TOKEN),
            None,
        )
        .await?;
    assert!(!agents.text.contains("forged"), "{}", agents.text);

    // Log out: the session is gone, on the server too.
    page.goto(&format!("{}/dashboard", relay.url())).await?;
    page.and_wait_load("document.querySelector('.logout button').click(); true")
        .await?;
    page.wait_for("location.pathname === '/dashboard/login'", WAIT)
        .await?;
    let after = relay
        .http_client()
        .get(format!("{}/dashboard/agents", relay.url()))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(
        after.url().path(),
        "/dashboard/login",
        "a stale cookie is a login page"
    );
    eprintln!("dashboard browser test: {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_agent_shows_its_key_once_and_first_load_is_small() -> anyhow::Result<()> {
    let (shots, _keep) = screenshot_dir();
    let relay = Relay::start(RelayOpts::default()).await?;
    let browser = Browser::start().await?;
    let page = browser.new_page().await?;
    accept_dialogs(&page).await?;
    login(&page, &relay, ADMIN_TOKEN).await?;

    // First load of the overview with an empty cache: what goes over the wire.
    page.call("Network.clearBrowserCache", json!({})).await?;
    page.call("Network.setCacheDisabled", json!({"cacheDisabled": true}))
        .await?;
    let mark = page.mark();
    page.goto(&format!("{}/dashboard", relay.url())).await?;
    page.wait_for(
        "document.querySelector('[data-stat=agents]').textContent === '0'",
        WAIT,
    )
    .await?;
    let bytes: f64 = page
        .events_since(mark, "Network.loadingFinished")
        .iter()
        .filter_map(|e| e["params"]["encodedDataLength"].as_f64())
        .sum();
    let requests = page.events_since(mark, "Network.requestWillBeSent").len();
    eprintln!("dashboard first load: {bytes} bytes in {requests} requests");
    assert!(bytes > 1000.0 && bytes < 64_000.0, "{bytes} bytes");
    page.call("Network.setCacheDisabled", json!({"cacheDisabled": false}))
        .await?;

    page.goto(&format!("{}/dashboard/agents", relay.url()))
        .await?;
    page.and_wait_load(
        "document.querySelector('input[name=name]').value = 'laptop'; \
         document.querySelector('form.inline').requestSubmit(); true",
    )
    .await?;
    let key = page
        .eval("document.getElementById('api-key').textContent")
        .await?;
    let key = key.as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("lrk_"), "{key}");
    page.screenshot(&shots.join("agent-created.png")).await?;
    // The key works, and it is nowhere on the next page.
    let me = relay.agent_get(&key, "/api/v1/agent/me").await?;
    assert_eq!(me.status, 200, "{}", me.text);
    page.goto(&format!("{}/dashboard/agents", relay.url()))
        .await?;
    assert!(!page.text().await?.contains(&key));

    // Revoke it from its row.
    page.and_wait_load("document.querySelector('button.danger').click(); true")
        .await?;
    assert!(
        page.text().await?.contains("revoked"),
        "{}",
        page.text().await?
    );
    let me = relay.agent_get(&key, "/api/v1/agent/me").await?;
    assert_eq!(me.status, 401, "{}", me.text);
    Ok(())
}

/// A measurement, not a check: `cargo test -p lobster-e2e --test dashboard
/// -- --ignored --nocapture` prints how long the pages take to first paint
/// with 10,000 events in the database (docs/dashboard.md, "Figures").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn first_render_with_10000_events() -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    const EVENTS: usize = 10_000;
    let relay = Relay::start(RelayOpts::default().args(["--agent-rate-limit", "100000/s"])).await?;
    let agent = relay.create_agent("busy").await?;
    let started = Instant::now();
    let sender = Sender::default();
    let posts = futures_util::stream::iter(0..EVENTS)
        .map(|i| {
            let (url, sender) = (agent.webhook_url.clone(), &sender);
            async move {
                let kind = if i % 2 == 0 { "invoice.paid" } else { "push" };
                let body = format!(r#"{{"type":"{kind}","n":{i}}}"#);
                sender.post(&url, body.as_bytes(), &[]).await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for answer in posts {
        accepted_id(&answer?);
    }
    eprintln!("stored {EVENTS} events in {:?}", started.elapsed());

    let browser = Browser::start().await?;
    let page = browser.new_page().await?;
    login(&page, &relay, ADMIN_TOKEN).await?;
    for path in [
        "/dashboard",
        "/dashboard/events",
        "/dashboard/events?status=pending&type=push",
        "/dashboard/agents",
        "/dashboard/tail",
    ] {
        page.call("Network.setCacheDisabled", json!({"cacheDisabled": true}))
            .await?;
        page.goto(&format!("{}{path}", relay.url())).await?;
        let timing = page
            .eval(
                "(() => { const n = performance.getEntriesByType('navigation')[0]; \
                 const p = performance.getEntriesByName('first-contentful-paint')[0]; \
                 return {response: n.responseEnd - n.startTime, fcp: p ? p.startTime : null, \
                 load: n.loadEventEnd - n.startTime, bytes: n.transferSize}; })()",
            )
            .await?;
        eprintln!("{path}: {timing}");
    }
    Ok(())
}
