//! `login` / `logout`: the key is checked before it is stored, lands in the
//! OS keyring or (here, where there is none) in a 0600 credentials file,
//! and is found again by every command; one key per relay.

#![cfg(unix)]

use std::path::Path;

use lobster_e2e::{CliUser, RelayOpts, relay_with_agent};

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn login_without_a_keyring_falls_back_to_a_private_file_and_says_so() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "login").await?;
    let user = CliUser::new()?.with_keyring_unreachable();
    let login = user
        .run_with_stdin(
            &["login", "--api-key-stdin", "--relay", &relay.url()],
            format!("{}\n", agent.api_key).as_bytes(),
        )
        .await?;
    login.expect_code(0);
    let credentials = user.config_dir().join("credentials.toml");
    assert!(
        login.stderr.contains("Not using the OS keyring"),
        "{}",
        login.stderr
    );
    assert!(
        login.stderr.contains(&credentials.display().to_string()),
        "names the file: {}",
        login.stderr
    );
    assert!(login.stderr.contains("Logged in"), "{}", login.stderr);
    assert_eq!(mode(&credentials), 0o600);
    let stored = std::fs::read_to_string(&credentials)?;
    assert!(stored.contains(&agent.api_key), "{stored}");
    assert!(
        stored.contains(&relay.url()),
        "keyed by relay URL: {stored}"
    );
    let config = std::fs::read_to_string(user.config_dir().join("config.toml"))?;
    assert!(
        config.contains(&format!("relay = \"{}\"", relay.url())),
        "{config}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(user.config_dir())?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // No --relay, no --api-key: config.toml and the file supply both.
    let status = user.run(&["status", "--json"]).await?;
    let status = status.expect_code(0).json();
    assert_eq!(status["agent_id"], agent.agent_id.as_str());
    assert_eq!(status["key_source"], "file");
    assert_eq!(
        status["credentials_file"],
        credentials.display().to_string()
    );

    let logout = user.run(&["logout"]).await?;
    logout.expect_code(0);
    assert!(logout.stderr.contains("Logged out"), "{}", logout.stderr);
    assert!(!credentials.exists(), "the last key took the file with it");
    user.run(&["status"]).await?.expect_code(3);
    Ok(())
}

#[tokio::test]
async fn a_refused_key_exits_3_and_stores_nothing() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "refused").await?;
    let user = CliUser::new()?.with_keyring_unreachable();
    let wrong = format!("{}x", agent.api_key);
    let login = user
        .run_with_stdin(
            &["login", "--api-key-stdin", "--relay", &relay.url()],
            wrong.as_bytes(),
        )
        .await?;
    login.expect_code(3);
    assert!(
        login.stderr.contains("refused this API key"),
        "{}",
        login.stderr
    );
    assert!(
        login.stderr.contains("nothing was saved"),
        "{}",
        login.stderr
    );
    assert!(login.stderr.lines().count() <= 2, "{}", login.stderr);
    let files: Vec<_> = std::fs::read_dir(user.config_dir())?.collect();
    assert!(files.is_empty(), "nothing stored: {files:?}");

    let empty = user
        .run_with_stdin(
            &["login", "--api-key-stdin", "--relay", &relay.url()],
            b"\n",
        )
        .await?;
    empty.expect_code(2);
    // No terminal to prompt on, and no --api-key-stdin: say how instead.
    let no_tty = user.run(&["login", "--relay", &relay.url()]).await?;
    no_tty.expect_code(2);
    assert!(
        no_tty.stderr.contains("--api-key-stdin"),
        "{}",
        no_tty.stderr
    );
    Ok(())
}

#[tokio::test]
async fn two_relays_keep_a_key_each_and_the_last_login_is_the_default() -> anyhow::Result<()> {
    let (first, first_agent) = relay_with_agent(RelayOpts::default(), "first").await?;
    let (second, second_agent) = relay_with_agent(RelayOpts::default(), "second").await?;
    let user = CliUser::new()?;
    for (relay, agent) in [(&first, &first_agent), (&second, &second_agent)] {
        let login = user
            .run_with_stdin(
                &["login", "--api-key-stdin", "--relay", &relay.url()],
                agent.api_key.as_bytes(),
            )
            .await?;
        login.expect_code(0);
        assert!(
            login.stderr.contains("LOBSTER_RELAY_KEYRING=off"),
            "says why the keyring was not used: {}",
            login.stderr
        );
    }
    let default = user.run(&["status", "--json"]).await?.expect_code(0).json();
    assert_eq!(
        default["name"], "second",
        "the last login is the default relay"
    );
    let named = user
        .run(&["status", "--json", "--relay", &first.url()])
        .await?
        .expect_code(0)
        .json();
    assert_eq!(named["name"], "first");

    user.run(&["logout", "--relay", &first.url()])
        .await?
        .expect_code(0);
    user.run(&["status", "--relay", &first.url()])
        .await?
        .expect_code(3);
    user.run(&["status"]).await?.expect_code(0);
    Ok(())
}
