//! `login` and `logout`: keep an agent's API key for a relay, or forget it.
//!
//! `login` reads the key (hidden prompt, `--api-key-stdin`, or the global
//! `--api-key`), checks it with `GET /api/v1/agent/me`, and only then stores
//! it: in the OS keyring, else in `credentials.toml` (mode 0600), saying so.
//! It also makes the relay the default in `config.toml`. A refused key is
//! exit code 3 and nothing is written.

use std::io::{IsTerminal as _, Read as _};

use anyhow::Context as _;
use clap::Args;
use lobster_shared::Secret;
use lobster_shared::api::AgentMe;
use serde_json::{Value, json};

use crate::api::ApiClient;
use crate::config::save_default_relay;
use crate::context::Context;
use crate::credentials::keyring::{self, KeyringError};
use crate::credentials::{KeySource, file};
use crate::exit::{ExitCode, Fatal};
use crate::ui::print_data;

const EXAMPLES: &str = "\
Examples:
  # Prompt for the key (input hidden)
  lobster-relay login --relay https://relay.example.com

  # Scripts and CI: the key on stdin, never in the process list
  printf '%s' \"$KEY\" | lobster-relay login --api-key-stdin

Where no OS keyring works (headless Linux, containers, CI) the key goes to
credentials.toml in the config dir, mode 0600, and login says so. Several
relays can be logged in at once; --relay picks one, and the last login
becomes the default in config.toml.";

/// Flags of `lobster-relay login`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
pub struct LoginArgs {
    /// Read the API key from stdin instead of prompting for it.
    #[arg(long)]
    pub api_key_stdin: bool,
}

const ME: [&str; 4] = ["api", "v1", "agent", "me"];

/// Where `login` put the key.
enum Stored {
    Keyring,
    File(std::path::PathBuf),
}

/// Runs `login`.
pub async fn login(ctx: &Context, args: LoginArgs) -> anyhow::Result<()> {
    let ui = &ctx.ui;
    let key = read_key(ctx, &args).await?;
    ui.spin(format!("Checking the API key with {}...", ctx.account()));
    let me = check(ctx, key.clone()).await;
    ui.stop_spin();
    let me = me?;

    ctx.dir.create()?;
    let stored = store(ctx, &key).await?;
    save_default_relay(&ctx.dir.config_file(), &ctx.relay)?;

    if ctx.global.json {
        let (store, path) = match &stored {
            Stored::Keyring => ("keyring", Value::Null),
            Stored::File(path) => ("file", json!(path.display().to_string())),
        };
        let out = json!({
            "relay": ctx.account(),
            "agent_id": me.agent_id,
            "name": me.name,
            "workspace": me.workspace,
            "webhook_url": me.webhook_url,
            "key_store": store,
            "credentials_file": path,
        });
        print_data(serde_json::to_string_pretty(&out)?)?;
    }
    ui.status(format!(
        "Logged in to {} as {} ({}). Your webhook URL is {}",
        ctx.account(),
        me.name,
        me.agent_id,
        me.webhook_url
    ));
    ui.detail(format!(
        "{} is now the default relay in {}",
        ctx.account(),
        ctx.dir.config_file().display()
    ));
    Ok(())
}

/// The key to log in with: stdin, the global `--api-key`, or a prompt.
async fn read_key(ctx: &Context, args: &LoginArgs) -> anyhow::Result<Secret> {
    let key = if args.api_key_stdin {
        let mut text = String::new();
        tokio::task::spawn_blocking(move || {
            std::io::stdin().read_to_string(&mut text).map(|_| text)
        })
        .await?
        .context("could not read the API key from stdin")?
    } else if let Some(key) = &ctx.global.api_key {
        key.expose().to_owned()
    } else {
        prompt(ctx.account()).await?
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(Fatal::usage(
            "no API key given: the input was empty",
            "paste the agent's API key (it starts with lrk_); an admin creates one with \
             `lobster-relay admin create-agent NAME`",
        )
        .into());
    }
    if key.contains(char::is_whitespace) {
        return Err(Fatal::usage(
            "the API key holds spaces or line breaks",
            "give the key alone, exactly as `admin create-agent` printed it",
        )
        .into());
    }
    Ok(Secret::new(key))
}

/// Asks for the key on the terminal without echoing it.
async fn prompt(account: &str) -> anyhow::Result<String> {
    let term = [console::Term::stderr(), console::Term::stdout()]
        .into_iter()
        .find(console::Term::is_term);
    let term = match term {
        Some(term) if std::io::stdin().is_terminal() => term,
        _ => {
            return Err(Fatal::usage(
                "no terminal to ask for the API key on",
                "pipe the key in: `printf '%s' \"$KEY\" | lobster-relay login --api-key-stdin`",
            )
            .into());
        }
    };
    let question = format!("API key for {account} (input hidden): ");
    let read = tokio::task::spawn_blocking(move || {
        term.write_str(&question)?;
        term.read_secure_line()
    });
    tokio::select! {
        read = read => read?.context("could not read the API key from the terminal"),
        _ = tokio::signal::ctrl_c() => {
            // Ctrl-C came while the terminal does not echo: turn echo back on.
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
            Err(Fatal {
                code: ExitCode::Interrupted,
                message: "login cancelled; nothing was saved".into(),
                next_step: None,
            }
            .into())
        }
    }
}

/// `GET /api/v1/agent/me` with the key; a refusal is exit code 3.
async fn check(ctx: &Context, key: Secret) -> anyhow::Result<AgentMe> {
    let client = ApiClient::new(ctx.relay.clone(), key)?;
    match client.get_as::<AgentMe>(&ME).await {
        Ok(me) => Ok(me),
        Err(err) if err.is_auth() => Err(Fatal::auth(
            format!(
                "the relay at {} refused this API key; nothing was saved",
                ctx.account()
            ),
            "check that you copied the whole key (it starts with lrk_) and the --relay URL, \
             or ask the relay admin for a new key",
        )
        .into()),
        Err(err) => {
            Err(anyhow::Error::new(err).context("could not check the API key, nothing was saved"))
        }
    }
}

/// Stores the key in the OS keyring, else in `credentials.toml`.
async fn store(ctx: &Context, key: &Secret) -> anyhow::Result<Stored> {
    let ui = &ctx.ui;
    let path = ctx.dir.credentials_file();
    let why_not_keyring = if ctx.global.keyring {
        ui.spin("Saving the API key in the OS keyring...");
        let saved = keyring::set(ctx.account(), key.expose()).await;
        ui.stop_spin();
        match saved {
            Ok(()) => {
                // An older key of this relay in the file would only confuse.
                if let Err(err) = file::remove(&path, ctx.account()) {
                    ui.always(format!("warning: {err:#}"));
                }
                ui.status(format!(
                    "Saved the API key in the OS keyring ({}).",
                    KeySource::Keyring
                ));
                return Ok(Stored::Keyring);
            }
            Err(why) => why.to_string(),
        }
    } else {
        "it is turned off by LOBSTER_RELAY_KEYRING=off".to_owned()
    };
    file::set(&path, ctx.account(), key.expose())?;
    ui.always(format!(
        "Not using the OS keyring: {why_not_keyring}.\n\
         Saved the API key to {} instead (mode 0600: only you can read it).",
        path.display()
    ));
    Ok(Stored::File(path))
}

/// Runs `logout`: removes the relay's key from the OS keyring and the file.
pub async fn logout(ctx: &Context) -> anyhow::Result<()> {
    let ui = &ctx.ui;
    let account = ctx.account();
    let mut removed = Vec::new();
    if ctx.global.keyring {
        match keyring::delete(account).await {
            Ok(true) => removed.push("the OS keyring".to_owned()),
            Ok(false) => {}
            Err(KeyringError::Unavailable(why)) => ui.detail(format!("no OS keyring: {why}")),
            Err(KeyringError::Failed(why)) => ui.always(format!(
                "warning: {why}; a key for {account} stored there, if any, is still there"
            )),
        }
    }
    let path = ctx.dir.credentials_file();
    if file::remove(&path, account)? {
        removed.push(path.display().to_string());
    }
    if removed.is_empty() {
        ui.status(format!(
            "Not logged in to {account}: no API key was stored for it."
        ));
    } else {
        ui.status(format!(
            "Logged out of {account}: removed its API key from {}.",
            removed.join(" and ")
        ));
    }
    if ctx.global.api_key.is_some() {
        ui.always(
            "note: an API key is still given by --api-key or LOBSTER_RELAY_API_KEY; \
             unset it to stop using it",
        );
    }
    Ok(())
}
