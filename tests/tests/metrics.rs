//! `GET /metrics`: Prometheus text, no authentication, figures labelled by
//! route pattern so that relay ids never become labels.

use std::collections::BTreeMap;

use lobster_e2e::{Relay, RelayOpts, Sender, accepted_id, relay_with_agent};
use reqwest::Method;

const WEBHOOK_ROUTE: &str = "/api/v1/webhook/{relay_id}";

/// One sample line of the text format: `name{k="v",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape; comment lines skipped. Panics on a line that is
/// not a sample, so a malformed exposition fails the test.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                    (name, parse_labels(inner, line))
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// `k="v",k2="v2"`; the values here hold no escaped quotes.
fn parse_labels(inner: &str, line: &str) -> BTreeMap<String, String> {
    inner
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
            (key.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect()
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(relay: &Relay) -> anyhow::Result<(String, Vec<Sample>)> {
    let answer = relay.request(Method::GET, "/metrics", None, None).await?;
    assert_eq!(
        answer.status, 200,
        "/metrics needs no auth: {}",
        answer.text
    );
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "Prometheus text format, got {content_type:?}"
    );
    let samples = parse(&answer.text);
    Ok((answer.text, samples))
}

#[tokio::test]
async fn a_webhook_shows_in_the_counters_by_route_never_by_relay_id() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "metered").await?;
    let (_, before) = scrape(&relay).await?;
    let accepted_before = value_of(
        &before,
        "lobster_http_requests_total",
        &[("route", WEBHOOK_ROUTE), ("status", "202")],
    );

    let sender = Sender::default();
    accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"metrics.test"}"#, &[])
            .await?,
    );
    let unknown = "rly_unknownMetricsProbe0123456789";
    let missing = sender
        .post(&relay.webhook_url(unknown), br#"{"type":"x"}"#, &[])
        .await?;
    missing.assert_error(404);
    let stray = relay
        .request(Method::GET, "/no/such/path-xyzzy", None, None)
        .await?;
    stray.assert_error(404);

    let (text, after) = scrape(&relay).await?;
    let accepted_after = value_of(
        &after,
        "lobster_http_requests_total",
        &[("route", WEBHOOK_ROUTE), ("status", "202")],
    );
    assert_eq!(
        accepted_after - accepted_before,
        1.0,
        "one accepted webhook, one more 202 on the webhook route:\n{text}"
    );
    assert_eq!(
        value_of(
            &after,
            "lobster_http_requests_total",
            &[("route", WEBHOOK_ROUTE), ("status", "404")],
        ),
        1.0,
        "the unknown relay id counts under the route pattern:\n{text}"
    );
    assert!(
        value_of(
            &after,
            "lobster_http_request_duration_seconds_count",
            &[("route", WEBHOOK_ROUTE)],
        ) >= 2.0,
        "webhook answers are timed:\n{text}"
    );
    assert!(
        value_of(
            &after,
            "lobster_http_requests_total",
            &[("route", "unmatched"), ("status", "404")],
        ) >= 1.0,
        "a path that matches no route counts as unmatched:\n{text}"
    );
    for leak in [agent.relay_id.as_str(), unknown, "xyzzy"] {
        assert!(
            !text.contains(leak),
            "{leak} must not appear in /metrics:\n{text}"
        );
    }
    Ok(())
}
