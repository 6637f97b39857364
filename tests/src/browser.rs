//! Headless Chromium (the Debian `chromium` package) driven over the
//! DevTools protocol, for the dashboard's browser tests.
//!
//! One WebSocket to the browser; pages are targets attached with
//! `flatten: true`, so their commands carry a `sessionId` on the same
//! socket. Replies are matched by id; events are kept in order so that a
//! wait can look for one that arrived after a given point.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for one protocol command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser's executable: `$CHROMIUM`, else `chromium` on the `PATH`.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A running headless browser; killed when dropped.
pub struct Browser {
    _child: Child,
    _profile: tempfile::TempDir,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    /// Every event so far, in arrival order; the version bumps on each.
    events: Arc<Mutex<Vec<Value>>>,
    arrived: watch::Receiver<usize>,
    next_id: AtomicU64,
}

impl Browser {
    /// Starts Chromium with a fresh profile and connects to it.
    pub async fn start() -> anyhow::Result<Arc<Self>> {
        let program = chromium_path().context(
            "chromium is not installed: apt-get install -y chromium (or set CHROMIUM=/path)",
        )?;
        let profile = tempfile::tempdir().context("creating the browser profile dir")?;
        let mut child = Command::new(&program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(COMMAND_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(at) = line.find("ws://") {
                    return Ok(line[at..].trim().to_owned());
                }
            }
            bail!("chromium exited before printing its DevTools address")
        })
        .await
        .context("chromium did not print its DevTools address in time")??;
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (mut write, mut read) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if write.send(message).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (arrived_tx, arrived) = watch::channel(0usize);
        let (p, e) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = read.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = value["id"].as_u64() {
                    if let Some(reply) = p.lock().expect("pending lock").remove(&id) {
                        let _ = reply.send(value);
                    }
                } else {
                    let mut list = e.lock().expect("events lock");
                    list.push(value);
                    arrived_tx.send_replace(list.len());
                }
            }
        });
        Ok(Arc::new(Self {
            _child: child,
            _profile: profile,
            out,
            pending,
            events,
            arrived,
            next_id: AtomicU64::new(1),
        }))
    }

    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.out
            .send(Message::Text(message.to_string().into()))
            .map_err(|_| anyhow::anyhow!("the browser connection is closed"))?;
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, rx)
            .await
            .with_context(|| format!("{method}: no answer in {COMMAND_TIMEOUT:?}"))?
            .with_context(|| format!("{method}: the browser connection closed"))?;
        if let Some(error) = reply.get("error") {
            bail!("{method}: {error}");
        }
        Ok(reply["result"].clone())
    }

    /// A new tab, attached and with the Page, Runtime and Network domains on.
    pub async fn new_page(self: &Arc<Self>) -> anyhow::Result<Page> {
        let target = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await?;
        let page = Page {
            browser: self.clone(),
            session: attached["sessionId"]
                .as_str()
                .context("attachToTarget gave no sessionId")?
                .to_owned(),
        };
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            page.call(domain, json!({})).await?;
        }
        Ok(page)
    }

    /// How many events have arrived: a mark for [`Page::wait_event`].
    pub fn mark(&self) -> usize {
        self.events.lock().expect("events lock").len()
    }

    /// Events of `session` named `method` after `mark`.
    pub fn events_since(&self, mark: usize, session: &str, method: &str) -> Vec<Value> {
        self.events.lock().expect("events lock")[mark..]
            .iter()
            .filter(|e| e["sessionId"] == session && e["method"] == method)
            .cloned()
            .collect()
    }
}

/// One tab.
pub struct Page {
    browser: Arc<Browser>,
    session: String,
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.browser.call(Some(&self.session), method, params).await
    }

    pub fn mark(&self) -> usize {
        self.browser.mark()
    }

    /// This page's events named `method` since `mark`.
    pub fn events_since(&self, mark: usize, method: &str) -> Vec<Value> {
        self.browser.events_since(mark, &self.session, method)
    }

    /// Waits for an event of this page named `method` after `mark`.
    pub async fn wait_event(
        &self,
        mark: usize,
        method: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let mut arrived = self.browser.arrived.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(event) = self.events_since(mark, method).into_iter().next() {
                    return Ok(event);
                }
                arrived
                    .changed()
                    .await
                    .context("the browser connection closed")?;
            }
        })
        .await
        .with_context(|| format!("no {method} within {timeout:?}"))?
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let mark = self.mark();
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer.get("errorText") {
            bail!("navigating to {url}: {error}");
        }
        self.wait_event(mark, "Page.loadEventFired", COMMAND_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Evaluates `expression` in the page (promises awaited); its value.
    pub async fn eval(&self, expression: &str) -> anyhow::Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            bail!("evaluating {expression:?}: {exception}");
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Runs `action` (which must navigate: a form submit, a click on a
    /// link) and waits for the next page's load event.
    pub async fn and_wait_load(&self, action: &str) -> anyhow::Result<()> {
        let mark = self.mark();
        self.eval(action).await?;
        self.wait_event(mark, "Page.loadEventFired", COMMAND_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Polls the JavaScript condition `expression` until it is `true`.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if self.eval(expression).await? == Value::Bool(true) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await?;
                bail!("waited {timeout:?} for {expression}; the page shows:\n{text}");
            }
        }
    }

    /// The page's text (what a reader sees).
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self
            .eval("document.body.innerText")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Emulates a viewport (`mobile` for a phone), or resets with `None`.
    pub async fn viewport(&self, size: Option<(u32, u32, bool)>) -> anyhow::Result<()> {
        match size {
            Some((width, height, mobile)) => {
                self.call(
                    "Emulation.setDeviceMetricsOverride",
                    json!({"width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile}),
                )
                .await?;
            }
            None => {
                self.call("Emulation.clearDeviceMetricsOverride", json!({}))
                    .await?;
            }
        }
        Ok(())
    }

    /// Saves a PNG of the whole page to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("screenshot without data")?)
            .context("screenshot data is not base64")?;
        std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
    }
}
