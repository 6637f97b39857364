//! The flags of `lobster-relay listen` (`docs/cli.md`, "Commands").

use std::time::Duration;

use clap::Args;

use super::headers::ExtraHeader;
use super::route::Route;
use crate::agent::transport::TransportChoice;
use crate::config::ListenDefaults;
use crate::exit::Fatal;
use crate::glob::GlobList;

/// `--concurrency` when neither the flag nor config.toml sets it.
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// `--forward-timeout` when neither the flag nor config.toml sets it.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

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

Defaults for --forward, --events, --header, --concurrency,
--forward-timeout and --transport can live in config.toml, under [listen]:
  [listen]
  forward = [\"message.*=localhost:3000/messages\", \"localhost:3000/other\"]
  events = \"message.*,ping\"
  headers = [\"X-Env: dev\"]
A flag replaces the file's value of the same name; --print or --exec
ignore the file's forward targets.

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
    after_help = EXAMPLES
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

    /// Handle at most N events at once; 1 handles them strictly in arrival order [default: 10].
    ///
    /// Print mode always writes one event at a time, in arrival order.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub concurrency: Option<u32>,

    /// Add a header to every forwarded request (repeatable); replaces one of the same name.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME: VALUE",
        value_parser = ExtraHeader::parse
    )]
    pub headers: Vec<ExtraHeader>,

    /// Give up on a forwarded request after this long and nack the event [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub forward_timeout: Option<Duration>,

    /// Accept any certificate from the --forward targets (a local app with a
    /// self-signed certificate); never applies to the relay.
    #[arg(long)]
    pub forward_insecure: bool,

    /// How to reach the relay: auto tries the WebSocket, then Server-Sent
    /// Events, then long-poll [default: auto].
    ///
    /// auto falls back when something in the way (a proxy) refuses the
    /// WebSocket upgrade, or holds the SSE stream back; the Ready line says
    /// which transport is used and why. ws, sse and poll use only that one.
    #[arg(long, value_name = "TRANSPORT", env = "LOBSTER_RELAY_TRANSPORT")]
    pub transport: Option<TransportChoice>,
}

/// The flags with config.toml's `[listen]` defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub events: Option<GlobList>,
    pub concurrency: u32,
    pub transport: TransportChoice,
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
        /// `--forward-insecure`: skip certificate checks of the targets.
        insecure: bool,
    },
    /// `sh -c CMD` per event.
    Exec { command: String },
}

impl ListenArgs {
    /// What to do, from the flags, then `defaults` (config.toml), then the
    /// built-in defaults. Print mode when no forward target or command is set.
    pub fn settings(&self, defaults: &ListenDefaults) -> Result<Settings, Fatal> {
        let headers = if self.headers.is_empty() {
            defaults.headers.clone()
        } else {
            self.headers.clone()
        };
        let routes = if self.forward.is_empty() {
            defaults.forward.clone()
        } else {
            self.forward.clone()
        };
        let mode = if let Some(command) = &self.exec {
            Mode::Exec {
                command: command.clone(),
            }
        } else if self.print || routes.is_empty() {
            Mode::Print
        } else {
            Mode::Forward {
                routes,
                headers,
                timeout: self
                    .forward_timeout
                    .or(defaults.forward_timeout)
                    .unwrap_or(DEFAULT_FORWARD_TIMEOUT),
                insecure: self.forward_insecure,
            }
        };
        if self.forward_insecure && !matches!(mode, Mode::Forward { .. }) {
            return Err(Fatal::usage(
                "--forward-insecure only applies to forwarded requests",
                "add --forward https://localhost:PORT, or drop --forward-insecure",
            ));
        }
        if !self.headers.is_empty() && !matches!(mode, Mode::Forward { .. }) {
            return Err(Fatal::usage(
                "--header only applies to forwarded requests",
                "add --forward URL, or set forward under [listen] in config.toml",
            ));
        }
        Ok(Settings {
            mode,
            events: self.events.clone().or_else(|| defaults.events.clone()),
            concurrency: self
                .concurrency
                .or(defaults.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
            transport: self.transport.or(defaults.transport).unwrap_or_default(),
        })
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

    fn settings(args: &[&str]) -> Settings {
        listen(args)
            .unwrap()
            .settings(&ListenDefaults::default())
            .unwrap()
    }

    #[test]
    fn print_is_the_default() {
        let settings = settings(&[]);
        assert!(matches!(settings.mode, Mode::Print));
        assert_eq!(settings.concurrency, 10);
    }

    #[test]
    fn forward_routes_and_extras_are_collected_in_order() {
        let settings = settings(&[
            "--forward",
            "message.*=localhost:3000/m",
            "--forward",
            "localhost:3000",
            "-H",
            "X-A: 1",
            "--forward-timeout",
            "2s",
        ]);
        let Mode::Forward {
            routes,
            headers,
            timeout,
            insecure,
        } = settings.mode
        else {
            panic!("not forward mode");
        };
        assert_eq!(routes.len(), 2);
        assert_eq!(headers.len(), 1);
        assert_eq!(timeout, Duration::from_secs(2));
        assert!(!insecure, "certificate checks stay on unless asked");
    }

    #[test]
    fn config_defaults_fill_in_and_flags_replace_them() {
        let defaults = ListenDefaults {
            forward: vec![Route::parse("localhost:1/a").unwrap()],
            events: GlobList::parse("a.*").ok(),
            headers: vec![ExtraHeader::parse("X-Env: dev").unwrap()],
            concurrency: Some(3),
            forward_timeout: Some(Duration::from_secs(5)),
            transport: Some(TransportChoice::Poll),
        };
        let from_file = listen(&[]).unwrap().settings(&defaults).unwrap();
        let Mode::Forward {
            routes,
            headers,
            timeout,
            ..
        } = &from_file.mode
        else {
            panic!("config forward ignored");
        };
        assert_eq!(routes[0].url.path(), "/a");
        assert_eq!(headers.len(), 1);
        assert_eq!(*timeout, Duration::from_secs(5));
        assert_eq!(from_file.concurrency, 3);
        assert_eq!(from_file.transport, TransportChoice::Poll);
        assert!(from_file.events.unwrap().matches("a.b"));

        let flags = listen(&["--forward", "localhost:2/b", "--concurrency", "1"])
            .unwrap()
            .settings(&defaults)
            .unwrap();
        let Mode::Forward { routes, .. } = &flags.mode else {
            panic!("not forward");
        };
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].url.path(), "/b");
        assert_eq!(flags.concurrency, 1);
        let sse = listen(&["--transport", "sse"]).unwrap();
        assert_eq!(
            sse.settings(&defaults).unwrap().transport,
            TransportChoice::Sse,
            "the flag beats the file"
        );

        let print = listen(&["--print"]).unwrap().settings(&defaults).unwrap();
        assert!(matches!(print.mode, Mode::Print));
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
            &["--transport", "carrier-pigeon"],
        ] {
            let err = listen(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        }
        let err = listen(&["--header", "X-A: 1"])
            .unwrap()
            .settings(&ListenDefaults::default())
            .unwrap_err();
        assert_eq!(err.code, crate::exit::ExitCode::Usage);
    }
}
