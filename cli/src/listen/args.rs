//! The flags of `lobster-relay listen` (contract section 7).

use std::time::Duration;

use clap::Args;

use super::headers::ExtraHeader;
use super::route::Route;
use crate::glob::GlobList;

const EXAMPLES: &str = "\
Examples:
  # Print each event as one JSON line, for jq or a `while read` loop
  lobster-relay listen --api-key $KEY | jq .event_type

  # POST each event to a local app; the sender's signature headers pass through
  lobster-relay listen --forward localhost:3000/webhooks

  # Route by event type, first match wins, a plain URL takes the rest
  lobster-relay listen --forward 'message.*=localhost:3000/messages' --forward localhost:3000/other

  # Run a command per event: body on stdin, LOBSTER_EVENT_* in the environment
  lobster-relay listen --events 'order.*' --concurrency 1 --exec './handle.sh'

Exit codes: 0 after Ctrl-C (in-flight events finished), 1 failure,
2 bad flags, 3 the relay refused the API key; a second Ctrl-C exits 130.";

/// Flags of `lobster-relay listen`.
#[derive(Debug, Clone, Args)]
#[command(
    long_about = "Connect to the relay and handle webhooks as they arrive, until Ctrl-C.\n\n\
                  Prints the webhook URL once connected, reconnects by itself when the \
                  connection drops, and acks each event once it is handled (printed, \
                  forwarded with a 2xx answer, or run with exit status 0); anything else \
                  nacks it and the relay retries it later.",
    after_long_help = EXAMPLES
)]
pub struct ListenArgs {
    /// POST each event to this URL ('localhost:3000/hooks', 'https://...').
    ///
    /// Repeatable as PATTERN=URL to route by event type
    /// ('message.*=localhost:3000/messages'): first match wins, a plain URL
    /// takes every event. An event no route takes is acked and logged as
    /// skipped.
    #[arg(long, value_name = "[PATTERN=]URL", value_parser = Route::parse)]
    pub forward: Vec<Route>,

    /// Print each event to stdout as one JSON line, then ack it (the default).
    #[arg(long, conflicts_with_all = ["forward", "exec"])]
    pub print: bool,

    /// Run CMD with `sh -c` per event: body on stdin, exit status 0 acks.
    ///
    /// The environment holds LOBSTER_EVENT_ID, LOBSTER_EVENT_TYPE and
    /// LOBSTER_EVENT_ATTEMPT. The command's stdout and stderr are this
    /// process's own, so in this mode stdout carries exactly what the
    /// commands print.
    #[arg(long, value_name = "CMD", conflicts_with = "forward")]
    pub exec: Option<String>,

    /// Only receive events whose type matches one of these comma-separated globs.
    #[arg(long, value_name = "PATTERNS", value_parser = GlobList::parse)]
    pub events: Option<GlobList>,

    /// Handle at most N events at once; 1 handles them strictly in arrival order.
    ///
    /// Print mode always writes one event at a time, in arrival order.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub concurrency: u32,

    /// Add a header to every forwarded request (repeatable); replaces one of the same name.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME: VALUE",
        value_parser = ExtraHeader::parse,
        requires = "forward"
    )]
    pub headers: Vec<ExtraHeader>,

    /// Give up on a forwarded request after this long and nack the event.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub forward_timeout: Duration,
}

/// What `listen` does with each event.
#[derive(Debug, Clone)]
pub enum Mode {
    /// One JSON line per event on stdout.
    Print,
    /// POST to the first matching route.
    Forward {
        routes: Vec<Route>,
        headers: Vec<ExtraHeader>,
        timeout: Duration,
    },
    /// `sh -c CMD` per event.
    Exec { command: String },
}

impl ListenArgs {
    /// The mode the flags ask for; `--print` when none is given.
    pub fn mode(&self) -> Mode {
        if let Some(command) = &self.exec {
            Mode::Exec {
                command: command.clone(),
            }
        } else if !self.forward.is_empty() {
            Mode::Forward {
                routes: self.forward.clone(),
                headers: self.headers.clone(),
                timeout: self.forward_timeout,
            }
        } else {
            Mode::Print
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser as _;
    use clap::error::ErrorKind;

    use super::*;

    fn listen(args: &[&str]) -> Result<ListenArgs, clap::Error> {
        let argv = ["lobster-relay", "listen"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Listen(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn print_is_the_default() {
        let args = listen(&[]).unwrap();
        assert!(matches!(args.mode(), Mode::Print));
        assert_eq!(args.concurrency, 10);
        assert_eq!(args.forward_timeout, Duration::from_secs(30));
    }

    #[test]
    fn forward_routes_and_extras_are_collected_in_order() {
        let args = listen(&[
            "--forward",
            "message.*=localhost:3000/m",
            "--forward",
            "localhost:3000",
            "-H",
            "X-A: 1",
            "--forward-timeout",
            "2s",
        ])
        .unwrap();
        let Mode::Forward {
            routes,
            headers,
            timeout,
        } = args.mode()
        else {
            panic!("not forward mode");
        };
        assert_eq!(routes.len(), 2);
        assert_eq!(headers.len(), 1);
        assert_eq!(timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            &["--header", "nocolon", "--forward", "localhost:1"][..],
            &["--forward", "ftp://x"],
            &["--concurrency", "0"],
            &["--forward-timeout", "soon"],
            &["--print", "--exec", "cat"],
            &["--forward", "localhost:1", "--exec", "cat"],
            &["--header", "X-A: 1"],
        ] {
            let err = listen(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        }
    }
}
