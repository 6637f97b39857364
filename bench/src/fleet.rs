//! The parent's side of `agents`: the `swarm` child processes, what they
//! report merged on one board, and the `/proc` figures of a process.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::relay::{Agent, LogWatch, stop_child};
use crate::stats::Latency;
use crate::swarm::{ClientArgs, unix_ns};

/// What the children reported, merged; times are Unix nanoseconds.
#[derive(Default)]
pub struct Board {
    /// Each agent's latest `ready`; 0 before the first.
    ready: Vec<u64>,
    /// First arrival of each probe, by sequence number.
    probes: HashMap<u64, u64>,
    duplicates: u64,
    drops: u64,
    failures: BTreeMap<String, u64>,
    fatal: Vec<String>,
    unreadable: u64,
}

impl Board {
    fn note(&mut self, line: &str) -> Option<()> {
        let mut parts = line.split(' ');
        let kind = parts.next()?;
        let idx: usize = parts.next()?.parse().ok()?;
        let mut num = || parts.next()?.parse::<u64>().ok();
        match kind {
            "R" => *self.ready.get_mut(idx)? = num()?,
            "E" => {
                let (at, seq) = (num()?, num()?);
                if self.probes.insert(seq, at).is_some() {
                    self.duplicates += 1;
                }
            }
            "D" => self.drops += 1,
            "X" => {
                *self
                    .failures
                    .entry(line.rsplit(' ').next()?.into())
                    .or_default() += 1
            }
            "F" => self.fatal.push(line.to_owned()),
            _ => return None,
        }
        Some(())
    }

    /// Agents whose latest `ready` came after `t`.
    pub fn ready_since(&self, t: u64) -> usize {
        self.ready.iter().filter(|&&r| r > t).count()
    }

    pub fn probes_seen(&self, seqs: &[u64]) -> usize {
        seqs.iter().filter(|s| self.probes.contains_key(s)).count()
    }
}

/// The running `swarm` children.
pub struct Fleet {
    members: Vec<(Child, Option<ChildStdin>)>,
    board: Arc<Mutex<Board>>,
    log: Arc<LogWatch>,
    _keys: TempDir,
}

impl Fleet {
    /// Spawns `clients` children of this binary, each holding a share of
    /// `agents`, and starts merging their reports.
    pub async fn start(
        relay_url: &str,
        agents: &[Agent],
        clients: usize,
        args: &ClientArgs,
    ) -> anyhow::Result<Fleet> {
        let exe = std::env::current_exe().context("cannot find this executable's path")?;
        let keys = tempfile::tempdir().context("cannot create a temporary dir")?;
        let board = Arc::new(Mutex::new(Board {
            ready: vec![0; agents.len()],
            ..Board::default()
        }));
        let log = Arc::new(LogWatch::default());
        let share = agents.len().div_ceil(clients);
        let mut members = Vec::new();
        for (p, chunk) in agents.chunks(share).enumerate() {
            let path = keys.path().join(format!("keys-{p}"));
            let mut file = std::fs::File::create(&path)?;
            for agent in chunk {
                writeln!(file, "{}", agent.api_key)?;
            }
            let mut child = Command::new(&exe)
                .args(["swarm", "--relay", relay_url])
                .arg("--keys")
                .arg(&path)
                .arg(format!("--first={}", p * share))
                .arg(format!("--net={}", p + 1))
                .args(args.to_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a swarm client process")?;
            let stdout = child.stdout.take().expect("stdout is piped");
            let stderr = child.stderr.take().expect("stderr is piped");
            let board = board.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut board = board.lock().expect("board lock");
                    if board.note(&line).is_none() {
                        board.unreadable += 1;
                    }
                }
            });
            let _drained = log.clone().drain(BufReader::new(stderr).lines(), |_| true);
            let stdin = child.stdin.take();
            members.push((child, stdin));
        }
        Ok(Fleet {
            members,
            board,
            log,
            _keys: keys,
        })
    }

    /// How many agents the children hold.
    pub fn agents(&self) -> usize {
        self.board.lock().expect("board lock").ready.len()
    }

    /// Polls until `done` holds or `limit` passes; says whether it held.
    pub async fn wait(&self, limit: Duration, done: impl Fn(&Board) -> bool) -> bool {
        let started = Instant::now();
        loop {
            if done(&self.board.lock().expect("board lock")) {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the latest `ready` is at least `up` old.
    pub async fn wait_stable(&self, up: Duration) {
        let last = self
            .board
            .lock()
            .expect("board lock")
            .ready
            .iter()
            .copied()
            .max();
        let since = Duration::from_nanos(unix_ns().saturating_sub(last.unwrap_or(0)));
        if let Some(left) = (up + Duration::from_millis(500)).checked_sub(since) {
            tokio::time::sleep(left).await;
        }
    }

    /// The agents ready after `since`, their times from `from`, and the
    /// failed attempts since the last call.
    pub fn phase(&self, from: u64, since: u64) -> Value {
        let mut board = self.board.lock().expect("board lock");
        let mut times: Vec<Duration> = board
            .ready
            .iter()
            .filter(|&&r| r > since)
            .map(|&r| Duration::from_nanos(r.saturating_sub(from)))
            .collect();
        let latency = Latency::of(&mut times);
        json!({
            "ready": times.len(),
            "all_ms": latency.map(|l| crate::stats::ms(l.max)),
            "ready_ms": Latency::to_json(latency),
            "failed_attempts": std::mem::take(&mut board.failures),
            "fatal": board.fatal.iter().take(5).collect::<Vec<_>>(),
        })
    }

    pub fn take_failures(&self) {
        self.board.lock().expect("board lock").failures.clear();
    }

    /// Sessions that were ready and ended, so far.
    pub fn drops(&self) -> u64 {
        self.board.lock().expect("board lock").drops
    }

    /// `(seq, first arrival)` of those of `seqs` that arrived.
    pub fn probe_arrivals<'a>(&self, seqs: impl Iterator<Item = &'a u64>) -> Vec<(u64, u64)> {
        let board = self.board.lock().expect("board lock");
        seqs.filter_map(|s| Some((*s, *board.probes.get(s)?)))
            .collect()
    }

    /// CPU time of all children so far.
    pub fn cpu_time(&self) -> Duration {
        self.pids().filter_map(cpu_time).sum()
    }

    /// Resident memory of all children, kB.
    pub fn rss_kb(&self) -> u64 {
        self.pids().filter_map(memory).map(|m| m.rss_kb).sum()
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.iter().filter_map(|(c, _)| c.id())
    }

    /// Closes the children's stdin (they exit) and says how each ended,
    /// with their stderr.
    pub async fn stop(mut self) -> Value {
        let mut exits = Vec::new();
        for (_, stdin) in &mut self.members {
            stdin.take();
        }
        for (child, _) in &mut self.members {
            let exit = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => stop_child(child, "KILL")
                    .await
                    .unwrap_or_else(|e| format!("{e:#}")),
            };
            exits.push(exit);
        }
        let board = self.board.lock().expect("board lock");
        let (lines, _, first) = self.log.snapshot();
        json!({
            "exits": exits, "stderr_lines": lines, "stderr_first": first,
            "unreadable_lines": board.unreadable, "probe_duplicates": board.duplicates,
            "sessions_dropped": board.drops,
        })
    }
}

/// Resident memory of a process.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kb: u64,
    pub anon_kb: u64,
}

/// `VmRSS` and `RssAnon` from `/proc/PID/status`.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kb: field("VmRSS:")?,
        anon_kb: field("RssAnon:")?,
    })
}

/// User plus system CPU time from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU time from a `stat` file of `/proc`.
fn cpu_time_of(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(Duration::from_secs_f64(ticks as f64 / per_sec as f64))
}

/// User plus system CPU time of the threads of a process named `name`
/// (`/proc/PID/task/*/comm`), summed.
pub fn thread_cpu_time(pid: u32, name: &str) -> Option<Duration> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let tid: u32 = task.file_name().to_str()?.parse().ok()?;
        let time = cpu_time_of(&format!("/proc/{pid}/task/{tid}/stat"))?;
        total = Some(total.unwrap_or_default() + time);
    }
    total
}

/// Bytes a process has written to files and sockets (`wchar`).
pub fn bytes_written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))?
        .trim()
        .parse()
        .ok()
}

/// The soft "Max open files" of a process.
pub fn open_files_limit(pid: u32) -> Option<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3).map(str::to_owned)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The kernel settings that bound a connect storm on loopback.
pub fn kernel_limits() -> String {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/{name}"))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join("-"))
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "somaxconn {} (caps the relay's backlog of 8192), tcp_max_syn_backlog {}, \
         syncookies {}, ephemeral ports {}",
        read("core/somaxconn"),
        read("ipv4/tcp_max_syn_backlog"),
        read("ipv4/tcp_syncookies"),
        read("ipv4/ip_local_port_range")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_reads_every_kind_of_line() {
        let mut board = Board {
            ready: vec![0; 3],
            ..Board::default()
        };
        for line in [
            "R 1 500",
            "E 1 600 42",
            "E 1 700 42",
            "D 1 800 close-1012",
            "X 2 refused",
        ] {
            assert!(board.note(line).is_some(), "{line}");
        }
        assert!(board.note("R 9 1").is_none(), "no agent 9");
        assert!(board.note("Q 1 1").is_none());
        assert_eq!(board.ready_since(0), 1);
        assert_eq!(board.ready_since(500), 0);
        assert_eq!(board.probes_seen(&[42, 43]), 1);
        assert_eq!((board.duplicates, board.drops), (1, 1));
        assert_eq!(board.failures["refused"], 1);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let me = std::process::id();
        assert!(memory(me).is_some_and(|m| m.rss_kb > 0));
        assert!(cpu_time(me).is_some());
        assert!(open_files_limit(me).is_some());
    }
}
