//! The deployment files agree with the server they deploy: `.env.example`
//! names exactly the variables the server reads, with values it accepts;
//! `docker-compose.yml` has the single and the scale set-up, each relay
//! health-checked; the balancer passes WebSockets and outwaits the relay's
//! ping; the Dockerfile runs the server as a non-root user with a
//! shell-free health check. Each test fails when its file drifts.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lobster_e2e::binary::relay_bin;
use lobster_e2e::pki::TestCa;
use lobster_e2e::process::Proc;
use lobster_e2e::webhook_secret;
use serde_yaml_ng::Value;

/// The line in `.env.example` after which variables are docker compose's.
const COMPOSE_ONLY_MARKER: &str = "# ==== docker compose only";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A variable of `.env.example`: set (`NAME=value`) or documented with its
/// default or an example (`# NAME=value`).
#[derive(Debug, Clone)]
struct EnvEntry {
    value: String,
    commented: bool,
}

/// (server variables, docker compose variables) of `.env.example`.
fn env_example() -> (BTreeMap<String, EnvEntry>, BTreeMap<String, EnvEntry>) {
    let text = read(".env.example");
    let (server, compose) = text
        .split_once(COMPOSE_ONLY_MARKER)
        .expect(".env.example has a docker compose only section");
    // The rest of the marker line is its title.
    let compose = compose.split_once('\n').map_or("", |(_, rest)| rest);
    (env_entries(server), env_entries(compose))
}

fn env_entries(text: &str) -> BTreeMap<String, EnvEntry> {
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        let (commented, rest) = match line.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        let is_name = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !is_name {
            assert!(commented, "not a NAME=value line: {line:?}");
            continue;
        }
        let entry = EnvEntry {
            value: value.to_owned(),
            commented,
        };
        assert!(
            entries.insert(name.to_owned(), entry).is_none(),
            "{name} appears twice in .env.example"
        );
    }
    entries
}

/// Every `NAME` in `text` written as `{before}NAME"`.
fn names_after(text: &str, before: &str) -> BTreeSet<String> {
    text.match_indices(before)
        .filter_map(|(at, _)| {
            let rest = &text[at + before.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            (!name.is_empty() && rest[name.len()..].starts_with('"')).then_some(name)
        })
        .collect()
}

/// The environment variables the server reads: its flags' `env = "..."`
/// (hidden flags included, in any file of `server/src/config/`) and the
/// log filter. Nothing else in the server reads the environment
/// (config/mod.rs: "nothing downstream reads the environment"); the scan
/// below would see a new `from_env`.
fn server_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let dir = repo().join("server/src/config");
    for entry in std::fs::read_dir(&dir).expect("server/src/config is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            names.extend(names_after(&text, "env = \""));
        }
    }
    assert!(
        names.contains("RELAY_LISTEN"),
        "the flags' env attributes were not found under {}",
        dir.display()
    );
    for file in ["server/src/startup.rs", "server/src/lib.rs"] {
        names.extend(names_after(&read(file), "from_env(\""));
    }
    names
}

/// `[env: NAME]` entries of `lobster-relay server --help`, without the
/// client's global options (`LOBSTER_RELAY_*`), which every command shows.
fn help_variables() -> BTreeSet<String> {
    let out = std::process::Command::new(relay_bin())
        .args(["server", "--help"])
        .env("COLUMNS", "1000")
        .output()
        .expect("running lobster-relay server --help");
    assert!(out.status.success(), "server --help failed");
    let text = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("[env:") {
        let name: String = text[at + 5..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.starts_with("LOBSTER_RELAY_") {
            names.insert(name);
        }
    }
    names
}

#[test]
fn env_example_names_exactly_the_variables_the_server_reads() {
    let understood = server_variables();
    let shown = help_variables();
    assert!(
        shown.len() >= 20,
        "server --help lists too few variables; is the parsing broken? {shown:?}"
    );
    let unknown_to_scan: Vec<_> = shown.difference(&understood).collect();
    assert!(
        unknown_to_scan.is_empty(),
        "server --help shows variables this test's source scan missed: {unknown_to_scan:?}"
    );
    let (server, compose) = env_example();
    let listed: BTreeSet<String> = server.keys().cloned().collect();
    let missing: Vec<_> = understood.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&understood).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        ".env.example drifted from the server: missing {missing:?}, not read by the server {extra:?}"
    );
    // An empty value is a value: only where empty means "not given".
    for (name, entry) in &server {
        if !entry.commented && entry.value.is_empty() {
            assert!(
                ["WEBHOOK_SECRET", "RELAY_ADMIN_TOKEN"].contains(&name.as_str()),
                "{name}= is set empty in .env.example: comment it out instead"
            );
        }
    }
    let overlap: Vec<_> = compose
        .keys()
        .filter(|name| understood.contains(*name))
        .collect();
    assert!(
        overlap.is_empty(),
        "server variables in the compose-only section: {overlap:?}"
    );
}

/// Example values that need something this test does not start: they are
/// exercised by the scale-out and TLS tests instead.
const NOT_STARTED_HERE: &[&str] = &[
    // Refused by this build on purpose (documented as such).
    "RELAY_ENCRYPTION_KEY",
    // Only with PostgreSQL.
    "REDIS_URL",
    "RELAY_RESCAN_INTERVAL",
];

#[tokio::test]
async fn env_example_values_start_a_relay() -> anyhow::Result<()> {
    let (server, _) = env_example();
    let data = tempfile::tempdir()?;
    let ca = TestCa::new("deploy-files")?;
    let (cert, key) = ca.write("relay", &ca.server_cert(1)?)?;
    let config = data.path().join("relay.toml");
    std::fs::write(&config, "")?;
    let mut env = Vec::new();
    for (name, entry) in &server {
        if NOT_STARTED_HERE.contains(&name.as_str()) {
            continue;
        }
        let value = match name.as_str() {
            // Paths and addresses of this machine instead of the examples;
            // the rest exactly as written.
            "RELAY_LISTEN" => "127.0.0.1:0".to_owned(),
            "RELAY_DATA_DIR" => data.path().display().to_string(),
            "DATABASE_URL" => {
                assert!(entry.value.starts_with("sqlite://"), "{}", entry.value);
                format!("sqlite://{}", data.path().join("relay.db").display())
            }
            "RELAY_TLS_CERT" => cert.display().to_string(),
            "RELAY_TLS_KEY" => key.display().to_string(),
            "RELAY_CALLBACK_CA_CERT" => ca.ca_cert.display().to_string(),
            "RELAY_CONFIG" => config.display().to_string(),
            "WEBHOOK_SECRET" if entry.value.is_empty() => webhook_secret(),
            _ => entry.value.clone(),
        };
        env.push((name.clone(), value));
    }
    let args: Vec<OsString> = vec!["server".into()];
    let relay = Proc::spawn("relay from .env.example", &args, &env)?;
    let started = relay
        .wait_for_stderr("relay listening", Duration::from_secs(30))
        .await;
    assert!(
        started.is_ok(),
        "a relay with every value of .env.example did not start: {}",
        relay.stderr.tail(20)
    );
    Ok(())
}

fn compose() -> Value {
    let mut doc: Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    doc.apply_merge().expect("YAML merge keys resolve");
    doc
}

fn profiles(service: &Value) -> Vec<&str> {
    service["profiles"]
        .as_sequence()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn env_of<'a>(service: &'a Value, name: &str) -> &'a str {
    service["environment"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no environment.{name} in {service:?}"))
}

fn assert_healthy_dependency(service: &Value, on: &str) {
    assert_eq!(
        service["depends_on"][on]["condition"].as_str(),
        Some("service_healthy"),
        "must wait for {on} to be healthy: {:?}",
        service["depends_on"]
    );
}

fn assert_relay_healthcheck(name: &str, service: &Value) {
    let test: Vec<&str> = service["healthcheck"]["test"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no exec-form healthcheck"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        test,
        ["CMD", "/usr/local/bin/lobster-relay", "healthcheck"],
        "{name}: the image has no shell, so the check is exec form"
    );
}

#[test]
fn compose_has_a_single_relay_and_a_scale_profile() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let service = |name: &str| {
        let s = &doc["services"][name];
        assert!(!s.is_null(), "no service {name}");
        s
    };

    let single = service("relay");
    assert!(profiles(single).is_empty(), "relay is the default set-up");
    assert_relay_healthcheck("relay", single);
    assert!(
        single["volumes"]
            .as_sequence()
            .is_some_and(|v| v.iter().any(|m| m.as_str() == Some("relay-data:/data"))),
        "the SQLite relay keeps /data in a named volume"
    );
    assert!(env_of(single, "WEBHOOK_SECRET").contains("${WEBHOOK_SECRET"));

    let postgres = service("postgres");
    let image = postgres["image"].as_str().unwrap_or_default();
    assert!(
        image.starts_with("postgres:15") || image.starts_with("postgres:16"),
        "{image}"
    );
    let redis = service("redis");
    assert!(
        redis["image"]
            .as_str()
            .unwrap_or_default()
            .starts_with("redis:7")
    );
    for (name, s) in [("postgres", postgres), ("redis", redis)] {
        assert_eq!(profiles(s), ["scale"], "{name}");
        assert!(s["healthcheck"]["test"].is_sequence(), "{name} healthcheck");
    }

    let scaled: Vec<&str> = ["relay-a", "relay-b"].to_vec();
    for name in &scaled {
        let relay = service(name);
        assert_eq!(profiles(relay), ["scale"], "{name}");
        assert_relay_healthcheck(name, relay);
        assert!(
            env_of(relay, "DATABASE_URL").starts_with("postgres://"),
            "{name}"
        );
        assert!(env_of(relay, "DATABASE_URL").contains("@postgres:5432/"));
        assert_eq!(env_of(relay, "REDIS_URL"), "redis://redis:6379", "{name}");
        assert_healthy_dependency(relay, "postgres");
        assert_healthy_dependency(relay, "redis");
    }
    let (a, b) = (service("relay-a"), service("relay-b"));
    assert_eq!(
        a["environment"], b["environment"],
        "both instances share one configuration"
    );
    assert!(env_of(a, "RELAY_ADMIN_TOKEN").contains("${RELAY_ADMIN_TOKEN"));

    let lb = service("lb");
    assert_eq!(profiles(lb), ["scale"]);
    assert!(
        lb["image"]
            .as_str()
            .unwrap_or_default()
            .starts_with("nginx:")
    );
    assert!(
        lb["volumes"].as_sequence().is_some_and(|v| v
            .iter()
            .any(|m| m.as_str() == Some("./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"))),
        "the balancer uses deploy/nginx.conf"
    );
    for name in &scaled {
        assert_healthy_dependency(lb, name);
    }
    let lb_address = lb["networks"]["scale"]["ipv4_address"]
        .as_str()
        .expect("the balancer has a fixed address");
    assert_eq!(
        env_of(a, "RELAY_TRUSTED_PROXIES"),
        lb_address,
        "the relays trust the balancer's X-Forwarded-For, and only it"
    );

    // Whatever runs the relay image is health-checked.
    for (name, s) in services {
        if !s["build"].is_null() || s["image"].as_str() == Some("lobster-relay:local") {
            assert_relay_healthcheck(name.as_str().unwrap_or("?"), s);
        }
    }
}

#[test]
fn compose_variables_are_documented_in_env_example() {
    let text = read("docker-compose.yml");
    let used: BTreeSet<String> = text
        .match_indices("${")
        .map(|(at, _)| {
            text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let (server, compose_only) = env_example();
    // Group commit is SQLite's: on PostgreSQL the batch histogram stays empty.
    let postgres = lobster_e2e::services::e2e_backend_is_postgres();
    for name in used
        .iter()
        .filter(|n| !(postgres && n.starts_with("lobster_commit_batch_size")))
    {
        assert!(
            server.contains_key(name) || compose_only.contains_key(name),
            "docker-compose.yml uses ${{{name}}}, which .env.example does not document"
        );
    }
    for name in compose_only.keys() {
        assert!(
            used.contains(name),
            "{name} is in the compose-only section but docker-compose.yml never uses it"
        );
    }
}

/// `proxy_read_timeout 3600s;` → 3600 seconds.
fn nginx_seconds(conf: &str, directive: &str) -> u64 {
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{directive} ")))
        .unwrap_or_else(|| panic!("no {directive} in deploy/nginx.conf"));
    let value = line[directive.len()..].trim().trim_end_matches(';');
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let number: u64 = number.parse().unwrap_or_else(|_| panic!("{line}"));
    match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => panic!("unit of {line}"),
    }
}

#[test]
fn the_balancer_passes_websockets_and_outwaits_the_ping() {
    let conf = read("deploy/nginx.conf");
    let has = |needle: &str| {
        assert!(
            conf.lines().any(|l| l.trim() == needle),
            "deploy/nginx.conf needs `{needle}`"
        )
    };
    has("proxy_http_version 1.1;");
    has("proxy_set_header Upgrade $http_upgrade;");
    has("proxy_set_header Connection $connection_upgrade;");
    has("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;");
    for relay in ["relay-a:8080", "relay-b:8080"] {
        assert!(
            conf.lines()
                .any(|l| l.trim().starts_with(&format!("server {relay}"))),
            "upstream {relay}"
        );
    }
    // The relay pings every 20 s and drops a peer silent for 60 s.
    for directive in ["proxy_read_timeout", "proxy_send_timeout"] {
        assert!(
            nginx_seconds(&conf, directive) > 60,
            "{directive} must outwait the relay's 60 s idle limit"
        );
    }
}

/// Dockerfile instructions with continuation lines joined; comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (op, args) = l.trim().split_once(char::is_whitespace).unwrap_or((&l, ""));
            (op.to_ascii_uppercase(), args.trim().to_owned())
        })
        .collect()
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|_| panic!("not exec form (a JSON array): {args}"))
}

#[test]
fn the_image_runs_the_server_unprivileged_with_a_shell_free_healthcheck() {
    let all = dockerfile();
    // Only the last stage is the image.
    let last_from = all.iter().rposition(|(op, _)| op == "FROM").expect("FROM");
    let image = &all[last_from..];
    let one = |op: &str| -> &str {
        let found: Vec<_> = image.iter().filter(|(o, _)| o == op).collect();
        assert_eq!(found.len(), 1, "exactly one {op} in the final stage");
        &found[0].1
    };
    let healthcheck = one("HEALTHCHECK");
    let (options, command) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    assert!(options.contains("--interval="), "{healthcheck}");
    assert_eq!(
        exec_form(command),
        ["/usr/local/bin/lobster-relay", "healthcheck"]
    );
    assert_eq!(exec_form(one("ENTRYPOINT")), ["lobster-relay"]);
    assert_eq!(exec_form(one("CMD")), ["server"]);
    let user = one("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "the relay must not run as root: USER {user}"
    );
    assert_eq!(one("EXPOSE"), "8080");
    assert_eq!(one("VOLUME"), "/data");
    let env = one("ENV");
    assert!(env.contains("RELAY_LISTEN=0.0.0.0:8080"), "{env}");
    assert!(env.contains("RELAY_DATA_DIR=/data"), "{env}");
    assert!(
        image
            .iter()
            .any(|(op, args)| op == "COPY" && args.ends_with(" /usr/local/bin/lobster-relay")),
        "the binary is at /usr/local/bin/lobster-relay"
    );

    // The health check's default URL must hit the port the image listens on.
    let help = std::process::Command::new(relay_bin())
        .args(["healthcheck", "--help"])
        .output()
        .expect("running lobster-relay healthcheck --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[default: http://127.0.0.1:8080/readyz]"),
        "healthcheck's default URL changed; the Dockerfile's HEALTHCHECK relies on it:\n{help}"
    );

    let ignore = read(".dockerignore");
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
}

/// `deploy/grafana/lobster-relay.json` is valid JSON whose every query
/// names a series a real relay exports, and `docs/deployment.md` lists
/// every metric the relay exports.
#[tokio::test]
async fn the_grafana_board_and_the_docs_use_the_relays_metric_names() -> anyhow::Result<()> {
    use lobster_e2e::{RelayOpts, accepted_id, eventually, post_signed, relay_with_agent};
    let board: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/lobster-relay.json"))?;
    let mut used = BTreeSet::new();
    for panel in board["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names(target["expr"].as_str().expect("expr")));
        }
    }
    assert!(used.len() >= 10, "{used:?}");

    let (relay, agent) = relay_with_agent(RelayOpts::default(), "grafana").await?;
    accepted_id(&post_signed(&agent.webhook_url, br#"{"type":"x"}"#, &[]).await?);
    let exported = eventually("the queue depth gauge", lobster_e2e::WAIT, || async {
        let text = relay
            .request(reqwest::Method::GET, "/metrics", None, None)
            .await?
            .text;
        let names = metric_names(&text);
        anyhow::ensure!(names.contains("lobster_queue_depth"), "{text}");
        Ok(names)
    })
    .await?;
    // Group commit is SQLite's: on PostgreSQL the batch histogram stays empty.
    let postgres = lobster_e2e::services::e2e_backend_is_postgres();
    for name in used
        .iter()
        .filter(|n| !(postgres && n.starts_with("lobster_commit_batch_size")))
    {
        assert!(
            exported.contains(name),
            "the board uses {name}, which the relay does not export"
        );
    }
    let docs = read("docs/deployment.md");
    for name in exported
        .iter()
        .filter(|n| !n.ends_with("_bucket") && !n.ends_with("_sum") && !n.ends_with("_count"))
    {
        assert!(
            docs.contains(name.as_str()),
            "docs/deployment.md does not name {name}"
        );
    }
    Ok(())
}

/// The `lobster_...` metric names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("lobster_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}
