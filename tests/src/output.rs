//! A child's stdout or stderr, drained line by line into a searchable log.
//!
//! A background task reads the pipe to its end so the child never blocks on
//! a full pipe; waiting is done on a `watch` channel, never by sleeping.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Snapshot {
    lines: Vec<String>,
    /// The pipe reached its end: no line will be added.
    closed: bool,
}

/// Every line a pipe has produced so far, shared by clones.
#[derive(Debug, Clone)]
pub struct OutputLog {
    name: String,
    tx: watch::Sender<Snapshot>,
}

impl OutputLog {
    /// Starts draining `reader`; `name` labels the log in error messages.
    pub fn capture(
        name: impl Into<String>,
        reader: impl AsyncRead + Unpin + Send + 'static,
    ) -> Self {
        let log = Self {
            name: name.into(),
            tx: watch::Sender::new(Snapshot::default()),
        };
        let tx = log.tx.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\r', '\n'])
                            .to_owned();
                        tx.send_modify(|snap| snap.lines.push(line));
                    }
                }
            }
            tx.send_modify(|snap| snap.closed = true);
        });
        log
    }

    /// A copy of all lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.tx.borrow().lines.clone()
    }

    /// How many lines have arrived so far: a cursor for [`Self::next_line`].
    pub fn len(&self) -> usize {
        self.tx.borrow().lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pipe was closed (the process exited or closed it).
    pub fn is_closed(&self) -> bool {
        self.tx.borrow().closed
    }

    /// Whether any line so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.tx
            .borrow()
            .lines
            .iter()
            .any(|line| line.contains(needle))
    }

    /// The last `n` lines joined, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let snap = self.tx.borrow();
        let start = snap.lines.len().saturating_sub(n);
        snap.lines[start..].join("\n")
    }

    /// Waits until the pipe is closed (every line read); false on timeout.
    pub async fn wait_closed(&self, timeout: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|snap| snap.closed)).await,
            Ok(Ok(_))
        )
    }

    /// Waits for the first line containing `needle` and returns it.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_for_line(0, timeout, |line| line.contains(needle))
            .await
            .map(|(_, line)| line)
            .with_context(|| format!("waiting for {needle:?}"))
    }

    /// Waits for the first line at index `from` or later that satisfies
    /// `pred`; returns its index and text. Fails early once the pipe closes.
    pub async fn wait_for_line(
        &self,
        from: usize,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<(usize, String)> {
        let mut rx = self.tx.subscribe();
        let mut next = from;
        let mut found = None;
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|snap| {
                while next < snap.lines.len() {
                    if pred(&snap.lines[next]) {
                        found = Some((next, snap.lines[next].clone()));
                        return true;
                    }
                    next += 1;
                }
                snap.closed
            }),
        )
        .await;
        // Release the snapshot's read lock before `tail` takes it again.
        let timed_out = waited.is_err();
        drop(waited);
        if let Some(hit) = found {
            return Ok(hit);
        }
        let why = if timed_out {
            format!("nothing within {timeout:?}")
        } else {
            "it closed".into()
        };
        bail!(
            "no matching line in {} ({why}); last lines:\n{}",
            self.name,
            self.tail(20)
        )
    }

    /// The line at `*cursor`, waiting for it; advances the cursor. `None`
    /// once the pipe is closed and every line was read.
    pub async fn next_line(
        &self,
        cursor: &mut usize,
        timeout: Duration,
    ) -> anyhow::Result<Option<String>> {
        match self.wait_for_line(*cursor, timeout, |_| true).await {
            Ok((index, line)) => {
                *cursor = index + 1;
                Ok(Some(line))
            }
            Err(_) if self.is_closed() => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn lines_arrive_in_order_and_can_be_awaited() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let log = OutputLog::capture("test", reader);
        let waiter = {
            let log = log.clone();
            tokio::spawn(async move { log.wait_for("listening", SECOND).await })
        };
        use tokio::io::AsyncWriteExt as _;
        writer
            .write_all(b"starting\nrelay listening on x\r\nlast")
            .await
            .unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), "relay listening on x");
        drop(writer);
        let mut cursor = 0;
        assert_eq!(
            log.next_line(&mut cursor, SECOND).await.unwrap().as_deref(),
            Some("starting")
        );
        assert_eq!(
            log.next_line(&mut cursor, SECOND).await.unwrap().as_deref(),
            Some("relay listening on x")
        );
        assert_eq!(
            log.next_line(&mut cursor, SECOND).await.unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(log.next_line(&mut cursor, SECOND).await.unwrap(), None);
        assert!(log.contains("last"));
    }

    #[tokio::test]
    async fn waiting_fails_early_when_the_pipe_closes() {
        let (writer, reader) = tokio::io::duplex(64);
        let log = OutputLog::capture("test", reader);
        drop(writer);
        let err = log
            .wait_for("never", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("it closed"), "{err:#}");
    }

    #[tokio::test]
    async fn waiting_times_out() {
        let (_writer, reader) = tokio::io::duplex(64);
        let log = OutputLog::capture("test", reader);
        let err = log
            .wait_for("never", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("nothing within"), "{err:#}");
    }
}
