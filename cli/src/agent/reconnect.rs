//! The reconnect loop of `listen` and `wait`: run sessions until one
//! returns what the command waits for, Ctrl-C, or a fatal error.
//!
//! A lost connection or a failed attempt waits a [`Backoff`] delay and tries
//! again, saying so on stderr: one line when the connection drops or an
//! attempt fails (why, and when the next try is), a spinner while waiting
//! and connecting (on a terminal), and the session prints one when it is
//! back.

use std::future::Future;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::close::SessionEnd;
use crate::exit::Fatal;
use crate::ui::{Ui, clock, clock_in, paint, short_duration};

/// While the relay stays unreachable with the same error, a line at most
/// this often (a terminal also has the spinner).
const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Decides which failed attempts get a line of their own.
#[derive(Debug, Default)]
struct Quiet {
    last: Option<(String, Instant)>,
}

impl Quiet {
    /// True for a lost connection, a new error, or the same error after
    /// [`QUIET_FOR`] without a line; records what it allowed.
    fn should_say(&mut self, reason: &str, lost: bool) -> bool {
        let say = lost
            || self
                .last
                .as_ref()
                .is_none_or(|(said, at)| said != reason || at.elapsed() >= QUIET_FOR);
        if say {
            self.last = Some((reason.to_owned(), Instant::now()));
        }
        say
    }
}

/// What the loop tells each session attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempt {
    /// When the last session that got to `ready` dropped; `None` before the
    /// first `ready`.
    pub offline_since: Option<Instant>,
}

/// Runs `session` again and again until one returns `Ok` (what the command
/// waited for: `Ok(Some)`), ends [`SessionEnd::Stopped`] or `stop` fires
/// (`Ok(None)`), or fails fatally. The first connection must work: when it
/// cannot be made at all (a mistyped `--relay`, nothing listening,
/// something that is not a relay) the loop ends at once with exit 1 naming
/// `relay`, rather than retrying forever as if the relay were only
/// restarting. Once a session was ready, every failure is retried.
pub async fn run<T, F, Fut>(
    mut session: F,
    relay: &str,
    via: Option<&crate::proxy::Proxy>,
    stop: &CancellationToken,
    ui: &Ui,
) -> anyhow::Result<Option<T>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, SessionEnd>>,
{
    let mut backoff = Backoff::new();
    let mut attempt = Attempt::default();
    let mut ever_ready = false;
    let mut quiet = Quiet::default();
    loop {
        let end = match session(attempt).await {
            Ok(found) => return Ok(Some(found)),
            Err(end) => end,
        };
        let (reason, up_for, restarting) = match end {
            SessionEnd::Stopped => return Ok(None),
            SessionEnd::Fatal(err) => return Err(err),
            SessionEnd::Dropped {
                reason,
                up_for,
                restarting,
            } => (reason, up_for, restarting),
        };
        ever_ready |= up_for.is_some();
        if !ever_ready && !stop.is_cancelled() {
            ui.stop_spin();
            return Err(Fatal::relay_unreachable(relay, &reason, via).into());
        }
        if stop.is_cancelled() {
            return Ok(None);
        }
        if let Some(up_for) = up_for {
            attempt.offline_since = Some(Instant::now());
            backoff.connection_lasted(up_for);
        }
        if restarting {
            backoff.relay_restarting();
        }
        let delay = backoff.next_delay();
        // One line when the connection is lost; while it stays down, a new
        // line only when the error changes or every QUIET_FOR (a restart
        // used to print a line per attempt). On a terminal the spinner
        // below keeps saying when the next try is.
        if quiet.should_say(&reason, up_for.is_some()) {
            let (what, again) = match up_for {
                Some(_) => (paint("Connection lost:").red().bold(), "Reconnecting"),
                None => (
                    paint("Could not connect to the relay:").yellow(),
                    "Retrying",
                ),
            };
            ui.status(format!(
                "{}  {what} {reason}. {again} in {} (next try at {})...",
                paint(clock()).dim(),
                short_duration(delay),
                clock_in(delay)
            ));
        }
        ui.spin(format!(
            "Waiting to reconnect: {reason} (next try at {})...",
            clock_in(delay)
        ));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::agent::backoff::{CAP, FIRST, RESTART_STEP, STABLE};
    use crate::exit::{ExitCode, Fatal};

    /// Plays `script` as session outcomes, each session lasting its
    /// `up_for`, and records when each one started.
    async fn replay(
        script: Vec<SessionEnd>,
    ) -> (anyhow::Result<Option<()>>, Vec<Instant>, Vec<bool>) {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let flags = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let result = run(
            |attempt: Attempt| {
                let script = script.clone();
                starts.lock().unwrap().push(Instant::now());
                flags.lock().unwrap().push(attempt.offline_since.is_some());
                async move {
                    let end = script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(SessionEnd::Stopped);
                    if let SessionEnd::Dropped {
                        up_for: Some(up_for),
                        ..
                    } = &end
                    {
                        tokio::time::sleep(*up_for).await;
                    }
                    Err::<(), _>(end)
                }
            },
            "http://relay.test",
            None,
            &stop,
            &Ui::silent(),
        )
        .await;
        let starts = starts.lock().unwrap().clone();
        let flags = flags.lock().unwrap().clone();
        (result, starts, flags)
    }

    fn gaps(starts: &[Instant], ups: &[Duration]) -> Vec<Duration> {
        starts
            .windows(2)
            .zip(ups)
            .map(|(pair, up)| pair[1] - pair[0] - *up)
            .collect()
    }

    /// Once connected, each failure is retried with a growing delay; a
    /// stable connection resets the backoff.
    #[tokio::test(start_paused = true)]
    async fn retries_back_off_within_bounds_and_reset_after_a_stable_connection() {
        let lost = |up_for| SessionEnd::Dropped {
            reason: "lost".into(),
            up_for: Some(up_for),
            restarting: false,
        };
        let mut script = vec![lost(Duration::from_millis(10))];
        let mut ups = vec![Duration::from_millis(10)];
        script.extend((0..8).map(|_| SessionEnd::failed("refused")));
        ups.extend([Duration::ZERO; 8]);
        script.push(lost(STABLE));
        ups.push(STABLE);
        script.push(SessionEnd::failed("refused"));
        ups.push(Duration::ZERO);
        let (result, starts, flags) = replay(script).await;
        result.unwrap();
        let gaps = gaps(&starts, &ups);
        assert_eq!(gaps.len(), 11);
        assert!(gaps[0] <= FIRST, "first retry within 250 ms: {gaps:?}");
        assert!(
            gaps.iter().all(|gap| *gap <= CAP),
            "never above 10 s: {gaps:?}"
        );
        // Full jitter: any single delay may be short (the ninth is under
        // 250 ms one time in 40), but not all of eight growing ones.
        assert!(
            gaps[1..9].iter().any(|gap| *gap > FIRST),
            "the backoff grew: {gaps:?}"
        );
        assert!(
            gaps[9] <= FIRST,
            "reset after a stable connection: {gaps:?}"
        );
        assert!(
            !flags[0] && flags[1],
            "reconnect flag once ready: {flags:?}"
        );
    }

    /// A relay that cannot be reached at all the first time is a mistake to
    /// report (exit 1, naming the URL), not a reason to retry forever.
    #[tokio::test(start_paused = true)]
    async fn a_first_connection_that_fails_ends_the_loop_naming_the_relay() {
        let (result, starts, _) = replay(vec![
            SessionEnd::failed("HTTP version must be 1.1"),
            SessionEnd::Stopped,
        ])
        .await;
        let err = result.unwrap_err();
        let fatal = err.downcast_ref::<Fatal>().expect("a Fatal");
        assert_eq!(fatal.code, ExitCode::Failure);
        assert_eq!(
            fatal.message,
            "cannot reach the relay at http://relay.test: HTTP version must be 1.1"
        );
        assert_eq!(starts.len(), 1, "no retry");
    }

    /// After a 1012 close every listener retries within half a second, so
    /// they are back soon after the new relay listens, however many
    /// attempts it refused.
    #[tokio::test(start_paused = true)]
    async fn after_the_relay_says_it_is_restarting_retries_stay_short() {
        let mut script = vec![SessionEnd::Dropped {
            reason: "the relay is restarting".into(),
            up_for: Some(Duration::from_secs(2)),
            restarting: true,
        }];
        let mut ups = vec![Duration::from_secs(2)];
        for _ in 0..8 {
            script.push(SessionEnd::failed("refused"));
            ups.push(Duration::ZERO);
        }
        let (result, starts, _) = replay(script).await;
        result.unwrap();
        let gaps = gaps(&starts, &ups);
        assert_eq!(gaps.len(), 9);
        assert!(
            gaps.iter().all(|gap| *gap <= RESTART_STEP),
            "each retry within {RESTART_STEP:?}: {gaps:?}"
        );
    }

    /// A relay restart used to print a line per attempt (22 in 5 s): now
    /// the loss, then a line only for a new error or every 10 s.
    #[tokio::test(start_paused = true)]
    async fn repeated_failures_are_said_once_per_error_or_ten_seconds() {
        let mut quiet = Quiet::default();
        assert!(quiet.should_say("relay restarting", true), "the loss");
        assert!(quiet.should_say("Connection refused", false), "a new error");
        let mut said = 0;
        for _ in 0..20 {
            said += usize::from(quiet.should_say("Connection refused", false));
            tokio::time::advance(Duration::from_millis(250)).await;
        }
        assert_eq!(said, 0, "the same error within 5 s: no new line");
        tokio::time::advance(QUIET_FOR).await;
        assert!(
            quiet.should_say("Connection refused", false),
            "after 10 s, a reminder"
        );
        assert!(quiet.should_say("HTTP 502", false), "the error changed");
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_end_the_loop() {
        let fatal = Fatal::auth("revoked", "ask for a new key");
        let (result, starts, _) = replay(vec![
            SessionEnd::Dropped {
                reason: "lost".into(),
                up_for: Some(Duration::from_millis(10)),
                restarting: false,
            },
            SessionEnd::Fatal(fatal.into()),
        ])
        .await;
        assert!(result.unwrap_err().to_string().contains("revoked"));
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_during_the_backoff_wait_returns_at_once() {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let started = Instant::now();
        let result = run(
            move |_| {
                let cancel = cancel.clone();
                async move {
                    cancel.cancel();
                    Err::<(), _>(SessionEnd::failed("refused"))
                }
            },
            "http://relay.test",
            None,
            &stop,
            &Ui::silent(),
        )
        .await;
        assert!(result.unwrap().is_none());
        assert!(started.elapsed() < Duration::from_millis(1));
    }
}
