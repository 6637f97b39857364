//! The helper scripts a newcomer runs first: `scripts/send-webhook.sh`
//! against a real relay, and `scripts/run-local.sh`'s checks before it
//! builds anything.

use std::path::PathBuf;
use std::process::Output;

use lobster_e2e::{RelayOpts, relay_with_agent, webhook_secret};
use tokio::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts").join(name))
        .current_dir(repo())
        .env_remove("WEBHOOK_SECRET")
        .env_remove("RELAY_PORT")
        .kill_on_drop(true);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn send_webhook_signs_and_exits_non_zero_on_a_refusal() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "scripts").await?;

    let sent = script("send-webhook.sh")
        .arg(&agent.webhook_url)
        .env("WEBHOOK_SECRET", webhook_secret())
        .output()
        .await?;
    assert_eq!(sent.status.code(), Some(0), "{}", text(&sent));
    let answer = String::from_utf8_lossy(&sent.stdout);
    assert!(
        answer.contains("\"id\":\"evt_"),
        "the 202 is shown: {}",
        text(&sent)
    );
    let listed = relay
        .request(
            reqwest::Method::GET,
            "/api/v1/agent/events",
            Some(&agent.api_key),
            None,
        )
        .await?;
    assert!(
        listed.text.contains("hello.world"),
        "stored: {}",
        listed.text
    );

    // Signed with another secret: the relay answers 401 and the script
    // says so with its exit status.
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_ne!(other, webhook_secret());
    let refused = script("send-webhook.sh")
        .arg(&agent.webhook_url)
        .env("WEBHOOK_SECRET", other)
        .output()
        .await?;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("401"), "{}", text(&refused));
    Ok(())
}

#[tokio::test]
async fn send_webhook_has_help_and_a_usage_error() -> anyhow::Result<()> {
    let help = script("send-webhook.sh").arg("--help").output().await?;
    assert_eq!(help.status.code(), Some(0), "{}", text(&help));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: scripts/send-webhook.sh"));
    let bare = script("send-webhook.sh").output().await?;
    assert_eq!(bare.status.code(), Some(2), "{}", text(&bare));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("usage:"));
    Ok(())
}

/// A busy port used to surface as a confusing 401 from whatever listened
/// there; now the script stops before building anything and says what to do.
#[tokio::test]
async fn run_local_names_a_busy_port_and_the_variable_to_pick_another() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let out = script("run-local.sh")
        .env("RELAY_PORT", port.to_string())
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port} is busy")) && stderr.contains("RELAY_PORT="),
        "{}",
        text(&out)
    );
    // Its state (database, secrets, agent key) never goes into git.
    let ignored = std::fs::read_to_string(repo().join(".gitignore"))?;
    assert!(
        ignored.lines().any(|l| l.trim() == "/.lobster-local/"),
        ".gitignore: {ignored}"
    );
    Ok(())
}
