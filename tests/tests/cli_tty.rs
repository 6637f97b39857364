//! `listen` on a terminal (a pty made by util-linux `script`): a spinner
//! while it cannot connect, colour on its lines; none of that when
//! `NO_COLOR` is set (colour) or when stderr is piped (both).

#![cfg(target_os = "linux")]

use std::ffi::OsString;

use anyhow::Context as _;

use lobster_e2e::binary::relay_bin;
use lobster_e2e::output::OutputLog;
use lobster_e2e::process::{Proc, SpawnOpts};
use lobster_e2e::{CliUser, Relay, RelayOpts, WAIT};

/// Braille spinner frames the CLI draws.
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// `script -qfec 'exec lobster-relay ARGS' /dev/null`: the command on a
/// pty, everything it draws on `script`'s stdout. `exec`, because `script`
/// runs the command through `$SHELL -c`, and a shell such as dash would
/// otherwise stay in between and take the Ctrl-C meant for the listener.
fn on_a_tty(args: &[String], env: &[(String, String)]) -> anyhow::Result<Proc> {
    let quoted: Vec<String> = std::iter::once(relay_bin().display().to_string())
        .chain(args.iter().cloned())
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect();
    let command = format!("exec {}", quoted.join(" "));
    let argv: Vec<OsString> = ["-qfec", &command, "/dev/null"]
        .iter()
        .map(OsString::from)
        .collect();
    let opts = SpawnOpts {
        allow_color: !env.iter().any(|(key, _)| key == "NO_COLOR"),
        program: Some("script".into()),
        ..SpawnOpts::default()
    };
    Proc::spawn_opts("tty", &argv, env, opts)
}

/// Whether any line holds a colour or style sequence (`ESC [ 1;32 m`);
/// the spinner's line clearing (`ESC [ 2K`) is not one.
fn has_sgr(log: &OutputLog) -> bool {
    log.lines().iter().any(|line| {
        line.split("\u{1b}[").skip(1).any(|seq| {
            let params = seq.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
            params.starts_with('m')
        })
    })
}

fn has_spinner(log: &OutputLog) -> bool {
    log.lines().iter().any(|line| line.contains(SPINNER))
}

#[tokio::test]
async fn spinner_and_colours_on_a_tty_and_neither_when_piped() -> anyhow::Result<()> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("`script` (util-linux, Debian package bsdutils) is needed for this test");
    }
    // The relay goes down under a running listener: it spins while retrying.
    let mut relay = Relay::start(RelayOpts::default()).await?;
    let agent = relay.create_agent("tty").await?;
    let url = relay.url();
    let user = CliUser::new()?;
    let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env = vec![
            ("TERM".to_owned(), "xterm-256color".to_owned()),
            ("LOBSTER_RELAY_KEYRING".to_owned(), "off".to_owned()),
            (
                "LOBSTER_RELAY_CONFIG_DIR".to_owned(),
                user.config_dir().display().to_string(),
            ),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    };

    // Forwarding to a closed port: each event gets a red `<--` line.
    let args = |extra: &[&str]| -> Vec<String> {
        let listen = ["listen", "--relay", &url, "--api-key", &agent.api_key];
        listen
            .iter()
            .chain(&["--forward", "127.0.0.1:9/x"])
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    let trigger = || async {
        let run = user
            .run(&["trigger", "--relay", &url, "--api-key", &agent.api_key])
            .await?;
        run.expect_code(0);
        anyhow::Ok(run.stdout.trim().to_owned())
    };

    let mut tty = on_a_tty(&args(&[]), &env(&[]))?;
    tty.stdout
        .wait_for("Ready! Your webhook URL is", WAIT)
        .await?;
    relay.kill9().await?;
    tty.stdout.wait_for("Waiting to reconnect", WAIT).await?;
    relay.restart().await?;
    tty.stdout
        .wait_for("Ready! Your webhook URL is", WAIT)
        .await?;
    trigger().await?;
    tty.stdout.wait_for("nacked", WAIT).await?;
    assert!(
        has_spinner(&tty.stdout),
        "spinner on a tty:\n{}",
        tty.stdout.tail(20)
    );
    assert!(
        has_sgr(&tty.stdout),
        "colour on a tty:\n{}",
        tty.stdout.tail(20)
    );
    assert!(
        tty.stdout.contains("\u{1b}[36m-->"),
        "a cyan arrow:\n{}",
        tty.stdout.tail(20)
    );
    stop(&mut tty).await?;

    // NO_COLOR on a tty: the spinner may turn, but nothing is coloured.
    let mut no_color = on_a_tty(&args(&[]), &env(&[("NO_COLOR", "1")]))?;
    no_color.stdout.wait_for("Ready!", WAIT).await?;
    let id = trigger().await?;
    no_color
        .stdout
        .wait_for(&format!("nacked {id}"), WAIT)
        .await?;
    assert!(
        !has_sgr(&no_color.stdout),
        "NO_COLOR:\n{:?}",
        no_color.stdout.tail(20)
    );
    stop(&mut no_color).await?;

    // Piped, NO_COLOR unset: plain lines only.
    let argv: Vec<OsString> = args(&[]).iter().map(OsString::from).collect();
    let opts = SpawnOpts {
        allow_color: true,
        ..SpawnOpts::default()
    };
    let piped = Proc::spawn_opts("piped", &argv, &env(&[]), opts)?;
    piped.stderr.wait_for("Ready!", WAIT).await?;
    let id = trigger().await?;
    piped.stderr.wait_for(&format!("nacked {id}"), WAIT).await?;
    for log in [&piped.stderr, &piped.stdout] {
        let text = log.lines().join("\n");
        assert!(
            !text.contains('\u{1b}'),
            "escape codes when piped: {text:?}"
        );
        assert!(!text.contains(SPINNER), "spinner when piped: {text}");
    }
    Ok(())
}

/// Ctrl-C for the command on the pty (SIGINT to the listener under
/// `script`), then waits for both to exit: the listener stops gracefully,
/// with exit 0.
async fn stop(tty: &mut Proc) -> anyhow::Result<()> {
    let script = tty.pid().context("script already exited")?;
    let listener = descendants(script)
        .into_iter()
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == relay_bin())
        })
        .context("no lobster-relay process under script")?;
    std::process::Command::new("kill")
        .args(["-INT", &listener.to_string()])
        .status()?;
    let status = tty.wait_exit(WAIT).await?;
    assert_eq!(
        status.code(),
        Some(0),
        "graceful stop:\n{}",
        tty.stdout.tail(10)
    );
    Ok(())
}

/// Every process below `pid`, children first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            found.push(child);
            queue.push(child);
        }
    }
    found
}
