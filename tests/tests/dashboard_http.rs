//! The admin dashboard over plain HTTP, without a browser: the session
//! cookie's flags (with and without TLS), the Content-Security-Policy, and
//! paging through the event listing. `dashboard.rs` drives a real browser.

use lobster_e2e::{ADMIN_TOKEN, Relay, RelayOpts, Sender, accepted_id};

/// The login's `Set-Cookie` and a page's headers, without a browser.
async fn login_headers(
    relay: &Relay,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<(String, String)> {
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca_cert {
        let pem = std::fs::read(ca)?;
        client = client.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem)?);
    }
    let client = client.build()?;
    let page = client
        .get(format!("{}/dashboard/login", relay.url()))
        .send()
        .await?;
    let csp = page.headers()["content-security-policy"]
        .to_str()?
        .to_owned();
    let login = client
        .post(format!("{}/dashboard/login", relay.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await?;
    assert_eq!(login.status(), 303, "a login redirects to the overview");
    let cookie = login.headers()["set-cookie"].to_str()?.to_owned();
    Ok((cookie, csp))
}

#[tokio::test]
async fn the_cookie_is_secure_over_tls_and_pages_forbid_inline_script() -> anyhow::Result<()> {
    use lobster_e2e::TlsOpts;
    use lobster_e2e::pki::TestCa;
    let plain = Relay::start(RelayOpts::default()).await?;
    let (cookie, csp) = login_headers(&plain, None).await?;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Max-Age=43200") && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    let ca = TestCa::new("dashboard CA")?;
    let (cert, key) = ca.write("relay", &ca.server_cert(1)?)?;
    let tls = Relay::start(RelayOpts {
        tls: Some(TlsOpts {
            cert,
            key,
            ca_cert: ca.ca_cert.clone(),
        }),
        ..RelayOpts::default()
    })
    .await?;
    let (cookie, _) = login_headers(&tls, Some(&ca.ca_cert)).await?;
    assert!(cookie.contains("; Secure"), "{cookie}");
    Ok(())
}

#[tokio::test]
async fn the_event_listing_pages_through_older_events() -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    let relay = Relay::start(RelayOpts::default()).await?;
    let agent = relay.create_agent("pager").await?;
    let sender = Sender::default();
    let answers = futures_util::stream::iter(0..105)
        .map(|i| {
            let (url, sender) = (agent.webhook_url.clone(), &sender);
            async move {
                let body = format!(r#"{{"type":"page","n":{i}}}"#);
                sender.post(&url, body.as_bytes(), &[]).await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut ids: Vec<String> = answers
        .into_iter()
        .map(|a| a.map(|a| accepted_id(&a)))
        .collect::<Result<_, _>>()?;
    ids.sort();

    let (cookie, _) = login_headers(&relay, None).await?;
    let session = cookie.split(';').next().unwrap_or_default().to_owned();
    let get = |path: String| {
        let (client, session, url) = (relay.http_client(), session.clone(), relay.url());
        async move {
            client
                .get(format!("{url}{path}"))
                .header("cookie", session)
                .send()
                .await?
                .text()
                .await
        }
    };
    let first = get("/dashboard/events?type=page".into()).await?;
    let shown = |page: &str| ids.iter().filter(|id| page.contains(id.as_str())).count();
    assert_eq!(shown(&first), 100, "{first}");
    let at = first.find("id=\"older\"").expect("an Older link");
    let href_start = first[..at].rfind("href=\"").expect("its href") + 6;
    let href = first[href_start..at]
        .trim_end_matches("\" ")
        .replace("&amp;", "&");
    let second = get(href).await?;
    assert_eq!(shown(&second), 5, "{second}");
    assert!(!second.contains("id=\"older\""));
    // Together they show every event once.
    assert!(
        ids.iter()
            .all(|id| first.contains(id.as_str()) != second.contains(id.as_str()))
    );
    Ok(())
}
