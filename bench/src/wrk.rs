//! Closed-loop load from `wrk` for `compare`: N keep-alive connections
//! posting 1 KB JSON bodies as fast as each answer comes back. A Lua script
//! gives every request a distinct body (the run's label, the wrk thread and
//! a counter), because the relay's replay protection answers a repeated
//! unsigned body with `200 duplicate` and queues it only once; the sink reads
//! the counter as the event's sequence number.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

/// What one wrk run reported (from the script's `done` line).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrkRun {
    /// Responses received, any status.
    pub requests: u64,
    /// Responses with a status other than 2xx or 3xx.
    pub bad_status: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// wrk's own measure of its run.
    pub duration: Duration,
    /// Time to the answer, wrk's percentiles.
    pub p50: Duration,
    pub p99: Duration,
}

impl WrkRun {
    /// Answers with a 2xx or 3xx status.
    pub fn answered(&self) -> u64 {
        self.requests.saturating_sub(self.bad_status)
    }
}

/// How wrk is run.
pub struct Wrk {
    pub bin: PathBuf,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    pub body_size: usize,
}

/// The marker of the script's result line on wrk's stdout.
const MARK: &str = "LOBSTER_BENCH_WRK";

impl Wrk {
    /// Fails with what to do when wrk cannot be run at all.
    pub async fn check(&self) -> anyhow::Result<()> {
        let out = Command::new(&self.bin).arg("--version").output().await;
        match out {
            // `wrk --version` prints its banner and exits 1.
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("wrk") => Ok(()),
            Ok(_) => bail!("{} does not look like wrk", self.bin.display()),
            Err(err) => bail!(
                "cannot run {}: {err}; install wrk (apt-get install wrk) or pass --wrk-bin PATH",
                self.bin.display()
            ),
        }
    }

    /// Writes the script for one run into `dir`; bodies carry `label`.
    pub fn script(&self, dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{label}.lua"));
        std::fs::write(&path, lua_script(label, self.body_size))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Runs wrk against `url` with `script` and reads its result line.
    pub async fn run(&self, url: &str, script: &Path) -> anyhow::Result<WrkRun> {
        let out = Command::new(&self.bin)
            .arg("-t")
            .arg(self.threads.to_string())
            .arg("-c")
            .arg(self.connections.to_string())
            .arg("-d")
            .arg(format!("{}s", self.duration.as_secs()))
            .args(["--timeout", "10s", "-s"])
            .arg(script)
            .arg(url)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "wrk {url} failed ({}): {}{}",
                out.status,
                stderr.trim(),
                stdout.trim()
            );
        }
        stdout
            .lines()
            .find_map(parse_result)
            .with_context(|| format!("no {MARK} line in wrk's output:\n{stdout}{stderr}"))
    }
}

/// The padding that makes a body about `body_size` bytes (sequence numbers
/// vary in width by a few bytes).
fn pad_len(label: &str, body_size: usize) -> usize {
    let bare =
        format!(r#"{{"type":"bench","seq":1000000001,"sent_ns":0,"run":"{label}","pad":""}}"#);
    body_size.saturating_sub(bare.len())
}

/// The Lua script: `setup` numbers the threads, `request` builds a new body
/// each time, `done` prints one line the harness parses.
fn lua_script(label: &str, body_size: usize) -> String {
    let pad = pad_len(label, body_size);
    format!(
        r#"-- written by lobster-bench compare
local label = "{label}"
local pad = string.rep("x", {pad})
local threads = {{}}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local counter = 0
function request()
  counter = counter + 1
  local seq = string.format("%d", (tid + 1) * 1000000000 + counter)
  local body = '{{"type":"bench","seq":' .. seq .. ',"sent_ns":0,"run":"' .. label .. '","pad":"' .. pad .. '"}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  local n = math.floor
  io.write(string.format("{MARK} %d %d %d %d %d %d\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration,
    n(latency:percentile(50)), n(latency:percentile(99))))
end
"#
    )
}

/// `MARK requests status_errors socket_errors duration_us p50_us p99_us`
fn parse_result(line: &str) -> Option<WrkRun> {
    let rest = line.strip_prefix(MARK)?.strip_prefix(' ')?;
    let n: Vec<u64> = rest
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [
        requests,
        bad_status,
        socket_errors,
        duration_us,
        p50_us,
        p99_us,
    ] = n[..]
    else {
        return None;
    };
    Some(WrkRun {
        requests,
        bad_status,
        socket_errors,
        duration: Duration::from_micros(duration_us),
        p50: Duration::from_micros(p50_us),
        p99: Duration::from_micros(p99_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_done_line() {
        let run = parse_result("LOBSTER_BENCH_WRK 1200 3 1 2000000 450 9100").unwrap();
        assert_eq!(run.answered(), 1197);
        assert_eq!(run.socket_errors, 1);
        assert_eq!(run.duration, Duration::from_secs(2));
        assert_eq!(run.p99, Duration::from_micros(9100));
        assert_eq!(parse_result("Running 2s test @ http://x"), None);
        assert_eq!(parse_result("LOBSTER_BENCH_WRK 1 2"), None);
    }

    #[test]
    fn bodies_are_about_the_asked_size() {
        let label = "r1-direct-0a1b";
        let body = format!(
            r#"{{"type":"bench","seq":1000000001,"sent_ns":0,"run":"{label}","pad":"{}"}}"#,
            "x".repeat(pad_len(label, 1024))
        );
        assert_eq!(body.len(), 1024);
        assert!(
            lua_script(label, 1024)
                .contains(&format!("string.rep(\"x\", {})", pad_len(label, 1024)))
        );
    }
}
