//! Workspaces stored in the database: their own scheme and secrets,
//! rotation, the admin API's refusals, and secrets encrypted at rest.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use lobster_e2e::process::Proc;
use lobster_e2e::services::fresh_database;
use lobster_e2e::{
    ADMIN_TOKEN, Agent, Answer, Listener, Relay, RelayOpts, Sink, WAIT, accepted_id, webhook_secret,
};
use lobster_shared::signature::{Scheme, SigningKey, sign_github};
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "4c6f6273746572207265737420656e6372797074696f6e206b6579203332623f";
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn admin(relay: &Relay, method: Method, path: &str, body: Option<Value>) -> Answer {
    relay
        .request(method, path, Some(ADMIN_TOKEN), body)
        .await
        .expect("the relay answers")
}

async fn create_workspace(relay: &Relay, body: Value) -> Answer {
    admin(relay, Method::POST, "/api/v1/admin/workspaces", Some(body)).await
}

async fn rotate(relay: &Relay, name: &str, secrets: &[&str]) -> Answer {
    let path = format!("/api/v1/admin/workspaces/{name}/secrets");
    admin(
        relay,
        Method::PUT,
        &path,
        Some(json!({ "secrets": secrets })),
    )
    .await
}

/// `POST /api/v1/admin/agents` in `workspace`; expects `201`.
async fn agent_in(relay: &Relay, name: &str, workspace: &str) -> anyhow::Result<Agent> {
    let body = json!({"name": name, "workspace": workspace});
    let answer = admin(relay, Method::POST, "/api/v1/admin/agents", Some(body)).await;
    ensure!(answer.status == 201, "{} {}", answer.status, answer.text);
    assert_eq!(answer.json["workspace"], workspace);
    let field = |key: &str| {
        answer.json[key]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {key} in {}", answer.text))
    };
    let relay_id = field("relay_id")?;
    Ok(Agent {
        agent_id: field("agent_id")?,
        name: name.to_owned(),
        webhook_url: relay.webhook_url(&relay_id),
        reported_webhook_url: field("webhook_url")?,
        relay_id,
        api_key: field("api_key")?,
        created: answer.json.clone(),
    })
}

/// Posts `body` as GitHub would, signed with `secret`.
async fn post_github(url: &str, secret: &str, body: &[u8]) -> anyhow::Result<Answer> {
    let key = SigningKey::parse_for(Scheme::Github, secret)?;
    let signature = sign_github(&key, body);
    let delivery = lobster_e2e::new_message_id();
    lobster_e2e::Sender::default()
        .post_raw(
            url,
            body,
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", &delivery),
                ("x-hub-signature-256", &signature),
            ],
        )
        .await
}

/// GitHub's documentation secret has spaces: `WEBHOOK_SECRET` is one secret
/// taken verbatim (it used to be split on spaces, so every genuine delivery
/// got 401), and `WEBHOOK_SECRET_PREVIOUS` adds one more for rotation.
#[tokio::test]
async fn the_default_secret_is_taken_verbatim_and_previous_also_verifies() -> anyhow::Result<()> {
    const GITHUB_DOCS_SECRET: &str = "It's a Secret to Everybody";
    // The harness always passes a --webhook-secret of its own; with the
    // flag given again, the relay verifies with both, plus the previous one.
    let relay = Relay::start(RelayOpts {
        args: vec![
            "--signature-scheme".into(),
            "github".into(),
            "--webhook-secret".into(),
            GITHUB_DOCS_SECRET.into(),
        ],
        env: vec![("WEBHOOK_SECRET_PREVIOUS".into(), " old secret".into())],
        ..Default::default()
    })
    .await?;
    let agent = relay.create_agent("gh").await?;
    for (n, secret) in [GITHUB_DOCS_SECRET, " old secret"].into_iter().enumerate() {
        let body = format!(r#"{{"zen":"Keep it logically awesome.","n":{n}}}"#);
        let answer = post_github(&agent.webhook_url, secret, body.as_bytes()).await?;
        assert_eq!(answer.status, 202, "{secret:?}: {}", answer.text);
    }
    // GitHub's delivery id is not signed: the same signed body resent with
    // a new X-GitHub-Delivery is a replay, not a new event.
    let body = br#"{"zen":"Keep it logically awesome.","n":0}"#;
    let replayed = post_github(&agent.webhook_url, GITHUB_DOCS_SECRET, body).await?;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert_eq!(replayed.json["duplicate"], true);
    for word in ["It's", "Everybody", "old secret"] {
        let answer = post_github(&agent.webhook_url, word, b"{}").await?;
        answer.assert_error(401);
    }
    relay
        .wait_for_stderr("verify with 3 secret(s)", WAIT)
        .await?;
    relay
        .wait_for_stderr(
            "webhook secret 3 of 3 has leading or trailing whitespace",
            WAIT,
        )
        .await?;
    assert!(
        !relay.stderr_contains("Secret to Everybody"),
        "secrets are never logged"
    );
    Ok(())
}

#[tokio::test]
async fn a_github_workspace_verifies_with_its_own_secret_and_delivers() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let created = create_workspace(
        &relay,
        json!({"name": "acme", "signature_scheme": "github", "secrets": ["gh-secret-one"]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(!created.text.contains("gh-secret-one"), "{}", created.text);
    assert_eq!(created.json["secret_count"], 1);
    assert_eq!(created.json["signature_scheme"], "github");
    let agent = agent_in(&relay, "app", "acme").await?;

    let sink = Sink::start().await?;
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.url("/gh")],
    )
    .await?;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let id = accepted_id(&post_github(&agent.webhook_url, "gh-secret-one", body).await?);
    let got = sink.wait_for(1, WAIT).await?;
    assert_eq!(got[0].event_id(), Some(id.as_str()));
    assert_eq!(&got[0].body[..], body);
    assert_eq!(got[0].header("x-github-event"), Some("push"));

    let forged = post_github(&agent.webhook_url, "not-the-secret", body).await?;
    forged.assert_error(401);
    // The default workspace's secret and scheme do not open this one.
    let default_signed = lobster_e2e::post_signed(&agent.webhook_url, body, &[]).await?;
    default_signed.assert_error(401);
    Ok(())
}

#[tokio::test]
async fn rotation_accepts_old_and_new_then_only_new() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let created = create_workspace(
        &relay,
        json!({"name": "rot", "signature_scheme": "github", "secrets": ["old-secret"]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let agent = agent_in(&relay, "app", "rot").await?;
    // A new body each time: GitHub deliveries are deduplicated by body.
    let mut n = 0;
    let mut body = || {
        n += 1;
        format!(r#"{{"n":{n}}}"#).into_bytes()
    };
    accepted_id(&post_github(&agent.webhook_url, "old-secret", &body()).await?);
    post_github(&agent.webhook_url, "new-secret", &body())
        .await?
        .assert_error(401);

    let both = rotate(&relay, "rot", &["old-secret", "new-secret"]).await;
    assert_eq!(both.status, 200, "{}", both.text);
    assert_eq!(both.json["secret_count"], 2);
    for secret in ["old-secret", "new-secret"] {
        accepted_id(&post_github(&agent.webhook_url, secret, &body()).await?);
    }

    let only_new = rotate(&relay, "rot", &["new-secret"]).await;
    assert_eq!(only_new.status, 200, "{}", only_new.text);
    assert!(!only_new.text.contains("new-secret"), "{}", only_new.text);
    post_github(&agent.webhook_url, "old-secret", &body())
        .await?
        .assert_error(401);
    accepted_id(&post_github(&agent.webhook_url, "new-secret", &body()).await?);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_refuses_bad_workspaces_with_specific_codes() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let ok = json!({"name": "dup", "signature_scheme": "stripe", "secrets": ["whsec_x"]});
    assert_eq!(create_workspace(&relay, ok.clone()).await.status, 201);
    let cases = [
        (
            json!({"name": "Bad Name", "secrets": ["s"]}),
            400,
            "invalid_name",
        ),
        (
            json!({"name": "x", "signature_scheme": "svix", "secrets": ["s"]}),
            400,
            "unknown_scheme",
        ),
        (
            json!({"name": "x", "signature_scheme": "none"}),
            400,
            "unsigned_not_allowed",
        ),
        (
            json!({"name": "x", "signature_scheme": "github", "secrets": [""]}),
            400,
            "empty_secret",
        ),
        (
            json!({"name": "x", "signature_scheme": "github", "secrets": []}),
            400,
            "no_secrets",
        ),
        (
            json!({"name": "x", "secrets": ["whsec_!!"]}),
            400,
            "invalid_secret",
        ),
        (json!({"name": 5}), 400, "invalid_json"),
        (ok, 409, "workspace_exists"),
        (
            json!({"name": "default", "secrets": ["s"]}),
            409,
            "workspace_exists",
        ),
    ];
    for (body, status, code) in cases {
        let answer = create_workspace(&relay, body.clone()).await;
        assert_eq!(answer.assert_error(status), code, "{body}");
    }
    let unsigned = json!({"name": "dev", "signature_scheme": "none", "allow_unsigned": true});
    assert_eq!(create_workspace(&relay, unsigned).await.status, 201);

    let listed = admin(&relay, Method::GET, "/api/v1/admin/workspaces", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: Vec<&str> = listed.json["workspaces"]
        .as_array()
        .context("a workspaces array")?
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "dev", "dup"]);
    assert!(!listed.text.contains("whsec_x"), "{}", listed.text);
    assert!(!listed.text.contains(&webhook_secret()), "{}", listed.text);

    let agent = json!({"name": "a", "workspace": "nowhere"});
    let answer = admin(&relay, Method::POST, "/api/v1/admin/agents", Some(agent)).await;
    assert_eq!(answer.assert_error(404), "unknown_workspace");
    assert_eq!(
        rotate(&relay, "nowhere", &["s"]).await.assert_error(404),
        "workspace_not_found"
    );
    assert_eq!(
        rotate(&relay, "default", &["s"]).await.assert_error(400),
        "default_workspace_is_configured"
    );
    assert_eq!(
        rotate(&relay, "dup", &[" "]).await.assert_error(400),
        "empty_secret"
    );
    let anonymous = relay
        .request(Method::GET, "/api/v1/admin/workspaces", None, None)
        .await?;
    anonymous.assert_error(401);
    Ok(())
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_in_sqlite() -> anyhow::Result<()> {
    let dir = Arc::new(tempfile::tempdir()?);
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    secrets_at_rest(dir, database).await
}

/// Needs `LOBSTER_TEST_POSTGRES_URL` (scripts/test.sh sets it), like the
/// other PostgreSQL tests.
#[tokio::test]
async fn secrets_are_encrypted_at_rest_in_postgres() -> anyhow::Result<()> {
    let dir = Arc::new(tempfile::tempdir()?);
    secrets_at_rest(dir, fresh_database().await?).await
}

async fn secrets_at_rest(dir: Arc<tempfile::TempDir>, database: String) -> anyhow::Result<()> {
    let secret = format!("plaintext-canary-{}", lobster_e2e::new_message_id());
    let opts = RelayOpts {
        data_dir: Some(dir.clone()),
        ..RelayOpts::default()
    }
    .args(["--database", &database, "--encryption-key", KEY]);
    let mut relay = Relay::start(opts.clone()).await?;
    let created = create_workspace(
        &relay,
        json!({"name": "vault", "signature_scheme": "github", "secrets": [secret]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["encrypted_at_rest"], true, "{}", created.text);
    let agent = agent_in(&relay, "app", "vault").await?;
    accepted_id(&post_github(&agent.webhook_url, &secret, b"{}").await?);

    // The database dump: the workspace is there, its secret is not.
    let dump = dump(dir.path(), &database).await?;
    ensure!(
        dump.contains("vault"),
        "the dump should hold the workspace row"
    );
    ensure!(
        !dump.contains(&secret),
        "the plaintext secret is in the database"
    );
    ensure!(
        dump.contains("v1:"),
        "stored secrets are marked v1: (encrypted)"
    );
    assert!(!relay.stderr_contains(&secret), "the secret was logged");
    relay.terminate()?;
    relay.wait_exit(WAIT).await?;

    let (code, no_key) = start_fails(dir.path(), &database, &[]).await?;
    assert_eq!(code, Some(1), "a key that is missing is a start-up failure");
    assert!(no_key.contains("no encryption key was given"), "{no_key}");
    assert!(no_key.contains("--encryption-key"), "{no_key}");
    let (code, wrong) =
        start_fails(dir.path(), &database, &["--encryption-key", OTHER_KEY]).await?;
    assert_eq!(
        code,
        Some(1),
        "a key that does not match is a start-up failure"
    );
    assert!(
        wrong.contains("the encryption key does not match the one the secrets were stored with"),
        "{wrong}"
    );
    let (code, malformed) =
        start_fails(dir.path(), &database, &["--encryption-key", "abc"]).await?;
    assert_eq!(code, Some(2), "a malformed flag is a usage error");
    assert!(
        malformed.contains("--encryption-key must be 64 hex characters"),
        "{malformed}"
    );
    assert!(!malformed.contains("abc\""), "{malformed}");

    relay.restart().await?;
    let after = br#"{"after":"restart"}"#;
    accepted_id(&post_github(&agent.webhook_url, &secret, after).await?);
    post_github(&agent.webhook_url, "other", b"{}")
        .await?
        .assert_error(401);
    Ok(())
}

/// Everything the database holds, as text: the SQLite files' raw bytes
/// (the WAL included), or `SELECT *` of the table on PostgreSQL.
async fn dump(dir: &Path, database: &str) -> anyhow::Result<String> {
    if database.starts_with("sqlite://") {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("relay.db") {
                bytes.extend(std::fs::read(&path)?);
            }
        }
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let out = tokio::process::Command::new("psql")
        .arg(database)
        .args(["-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM workspaces"])
        .output()
        .await
        .context("running psql")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `server` on the data dir and database with `extra` flags, expects
/// it to exit before listening with a failure code; returns that code and
/// its stderr.
async fn start_fails(
    dir: &Path,
    database: &str,
    extra: &[&str],
) -> anyhow::Result<(Option<i32>, String)> {
    let mut args: Vec<OsString> = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--webhook-secret",
        &webhook_secret(),
        "--admin-token",
        ADMIN_TOKEN,
        "--database",
        database,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend(["--data-dir".into(), dir.as_os_str().to_owned()]);
    args.extend(extra.iter().map(OsString::from));
    let env = [("RELAY_LOG_FORMAT".to_owned(), "json".to_owned())];
    let mut proc = Proc::spawn("relay", &args, &env)?;
    let status = proc.wait_exit(WAIT).await?;
    proc.stderr.wait_closed(WAIT).await;
    let stderr = proc.stderr.tail(20);
    ensure!(!status.success(), "the relay started: {stderr}");
    ensure!(!stderr.contains("relay listening"), "{stderr}");
    assert!(stderr.lines().count() <= 3, "one clear error: {stderr}");
    Ok((status.code(), stderr))
}

#[tokio::test]
async fn the_cli_creates_lists_and_rotates_workspaces() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let user = lobster_e2e::CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("RELAY_ADMIN_TOKEN", ADMIN_TOKEN);
    let created = user
        .run(&[
            "admin",
            "create-workspace",
            "cli-ws",
            "--scheme",
            "github",
            "--secret",
            "cli-secret-1",
        ])
        .await?;
    created.expect_code(0);
    assert!(
        created
            .stdout
            .contains("Created workspace cli-ws (scheme github) with 1 secret(s)"),
        "{}",
        created.stdout
    );
    assert!(
        !created.stdout.contains("cli-secret-1"),
        "{}",
        created.stdout
    );
    user.run(&[
        "admin",
        "create-workspace",
        "cli-ws",
        "--scheme",
        "github",
        "--secret",
        "x",
    ])
    .await?
    .expect_code(1);
    user.run(&["admin", "create-workspace", "open", "--scheme", "none"])
        .await?
        .expect_code(1);

    let listed = user.run(&["admin", "list-workspaces", "--json"]).await?;
    listed.expect_code(0);
    assert_eq!(listed.json()["workspaces"][1]["name"], "cli-ws");
    let table = user.run(&["admin", "list-workspaces"]).await?;
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);

    let rotated = user
        .run(&[
            "admin",
            "rotate-workspace-secrets",
            "cli-ws",
            "--secret",
            "cli-secret-2",
            "--json",
        ])
        .await?;
    rotated.expect_code(0);
    assert_eq!(rotated.json()["secret_count"], 1);
    user.run(&[
        "admin",
        "rotate-workspace-secrets",
        "nowhere",
        "--secret",
        "s",
    ])
    .await?
    .expect_code(1);

    let agent = user
        .run(&[
            "admin",
            "create-agent",
            "app",
            "--workspace",
            "cli-ws",
            "--json",
        ])
        .await?;
    agent.expect_code(0);
    let url = agent.json()["webhook_url"]
        .as_str()
        .context("webhook_url")?
        .to_owned();
    accepted_id(&post_github(&url, "cli-secret-2", b"{}").await?);
    post_github(&url, "cli-secret-1", b"{}")
        .await?
        .assert_error(401);
    Ok(())
}
