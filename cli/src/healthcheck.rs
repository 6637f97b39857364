//! `lobster-relay healthcheck`: one GET, exit 0 on 2xx, else 1.
//!
//! Made for container health checks (`HEALTHCHECK CMD lobster-relay
//! healthcheck`): no config dir, no keyring, no relay URL resolution; it
//! honours `--ca-cert` for a relay serving TLS with a private CA.

use std::time::Duration;

use clap::Args;
use reqwest::Url;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to GET; any 2xx answer is healthy.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/readyz",
        value_parser = crate::global::parse_relay_url
    )]
    pub url: Url,
}

/// GETs the URL; an error (exit code 1) unless it answers 2xx in time.
pub async fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let client = crate::trust::http_client()
        .timeout(TIMEOUT)
        .no_proxy()
        .user_agent(concat!(
            "lobster-relay-healthcheck/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()?;
    let url = &args.url;
    let response = client.get(url.clone()).send().await.map_err(|err| {
        let reason = if err.is_timeout() {
            format!("no answer within {}s", TIMEOUT.as_secs())
        } else if err.is_connect() {
            // `Connection refused (os error 111)`, a TLS error: the root cause.
            let mut cause: &dyn std::error::Error = &err;
            while let Some(source) = cause.source() {
                cause = source;
            }
            cause.to_string()
        } else {
            lobster_shared::error_chain(&err)
        };
        anyhow::anyhow!("unhealthy: GET {url} failed: {reason}")
    })?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("unhealthy: GET {url} answered HTTP {}", status.as_u16());
    }
    Ok(())
}
