//! Which callback URLs an agent may register (the operator's [`Policy`]),
//! and how a list of them is kept in one sealed column.

use std::net::IpAddr;

use ipnet::IpNet;
use reqwest::Url;

use super::address;

/// Longest URL an agent may register.
pub const MAX_URL_LEN: usize = 2048;
/// Most URLs one agent may register (tried in order).
pub const MAX_URLS: usize = 5;

/// The operator's callback rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `--allow-http-callbacks`: plain `http://` URLs are accepted.
    pub allow_http: bool,
    /// `--callback-allow-cidr`: networks exempt from the address check.
    pub allow: Vec<IpNet>,
}

impl Policy {
    /// Parses and checks a URL an agent wants events POSTed to: absolute,
    /// `https` (or `http` when allowed), a host, no fragment, not too long;
    /// an IP literal host must be an allowed address. A name is checked
    /// each time it is resolved, at delivery.
    pub fn validate_url(&self, text: &str) -> Result<Url, UrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the callback URL is empty".into());
        }
        if text.len() > MAX_URL_LEN {
            return Err(format!("the callback URL is longer than {MAX_URL_LEN} characters").into());
        }
        let url = Url::parse(text).map_err(|e| {
            UrlError::Invalid(format!(
                "{text:?} is not an absolute URL ({e}); give one like https://example.com/hooks"
            ))
        })?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "callback URLs must use https (this relay does not allow plain http callbacks)"
                        .into(),
                );
            }
            other => return Err(format!("callback URLs must use https, not {other}:").into()),
        }
        if url.fragment().is_some() {
            return Err("a callback URL cannot have a #fragment".into());
        }
        match url.host() {
            None => return Err("the callback URL has no host".into()),
            Some(url::Host::Domain("")) => {
                return Err("the callback URL has no host".into());
            }
            Some(_) => {}
        }
        if let Some(ip) = literal_ip(&url) {
            address::check(ip, &self.allow)
                .map_err(|blocked| UrlError::Forbidden(blocked.to_string()))?;
        }
        Ok(url)
    }

    /// Checks what `PUT /api/v1/agent/callback` was given: `url`, or `urls`
    /// (1 to [`MAX_URLS`] distinct URLs, each as [`Policy::validate_url`]).
    pub fn validate_urls(
        &self,
        url: Option<String>,
        urls: Option<Vec<String>>,
    ) -> Result<Vec<Url>, UrlError> {
        let texts = match (url, urls) {
            (Some(_), Some(_)) => {
                return Err("give url or urls, not both".into());
            }
            (Some(one), None) => vec![one],
            (None, Some(many)) if !many.is_empty() => many,
            _ => {
                return Err(
                    r#"give url ({"url": "https://..."}) or urls ({"urls": ["https://...", ...]})"#
                        .into(),
                );
            }
        };
        if texts.len() > MAX_URLS {
            return Err(format!(
                "{} URLs given; an agent may have at most {MAX_URLS}",
                texts.len()
            )
            .into());
        }
        let several = texts.len() > 1;
        let mut urls: Vec<Url> = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let url = self
                .validate_url(text)
                .map_err(|err| match (several, err) {
                    (false, err) => err,
                    (true, UrlError::Invalid(m)) => {
                        UrlError::Invalid(format!("URL {}: {m}", i + 1))
                    }
                    (true, UrlError::Forbidden(m)) => {
                        UrlError::Forbidden(format!("URL {}: {m}", i + 1))
                    }
                })?;
            if urls.contains(&url) {
                return Err(format!("URL {} is listed twice: {url}", i + 1).into());
            }
            urls.push(url);
        }
        Ok(urls)
    }
}

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL the relay can call (syntax, scheme, length).
    Invalid(String),
    /// Its host is an address callbacks may not reach.
    Forbidden(String),
}

impl From<String> for UrlError {
    fn from(message: String) -> Self {
        UrlError::Invalid(message)
    }
}

impl From<&str> for UrlError {
    fn from(message: &str) -> Self {
        UrlError::Invalid(message.to_owned())
    }
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Invalid(m) | UrlError::Forbidden(m) => f.write_str(m),
        }
    }
}

/// The host of `url` when it is an IP literal (the resolver never sees it).
pub(super) fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The stored (sealed) text of a URL list: the URL itself when there is
/// one, as before lists existed, else a JSON array.
pub fn encode_urls(urls: &[Url]) -> String {
    match urls {
        [one] => one.as_str().to_owned(),
        many => serde_json::to_string(&many.iter().map(Url::as_str).collect::<Vec<_>>())
            .expect("a list of strings serializes"),
    }
}

/// Reads what [`encode_urls`] wrote.
pub fn decode_urls(text: &str) -> Result<Vec<Url>, String> {
    let texts: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("stored URL list: {e}"))?
    } else {
        vec![text.to_owned()]
    };
    let urls = texts
        .iter()
        .map(|t| Url::parse(t).map_err(|e| format!("stored URL: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("the stored URL list is empty".into());
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn urls_must_be_https_unless_http_is_allowed() {
        assert!(policy().validate_url("https://example.com/hooks").is_ok());
        let err = policy()
            .validate_url("http://example.com/hooks")
            .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        let http = Policy {
            allow_http: true,
            ..Policy::default()
        };
        assert!(http.validate_url("http://example.com/hooks").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hooks",
            "",
            "https://x.example/#frag",
        ] {
            assert!(policy().validate_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(policy().validate_url(&long).is_err());
    }

    #[test]
    fn ip_literal_hosts_are_checked_in_every_spelling() {
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://10.1.2.3:8443/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:127.0.0.1]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0/",
        ] {
            match policy().validate_url(url) {
                Err(UrlError::Forbidden(err)) => {
                    assert!(err.contains("callbacks may not reach"), "{url}: {err}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(policy().validate_url("https://8.8.8.8/").is_ok());
        let allowed = Policy {
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            ..Policy::default()
        };
        assert!(allowed.validate_url("https://127.0.0.1:9/").is_ok());
        assert!(allowed.validate_url("https://[::ffff:127.0.0.1]/").is_err());
    }

    #[test]
    fn a_list_is_one_to_five_distinct_urls_each_checked() {
        let one = policy()
            .validate_urls(Some("https://a.example/".into()), None)
            .unwrap();
        assert_eq!(one.len(), 1);
        let two = policy()
            .validate_urls(
                None,
                Some(vec![
                    "https://a.example/".into(),
                    "https://b.example/x".into(),
                ]),
            )
            .unwrap();
        assert_eq!(two[1].as_str(), "https://b.example/x");
        type Case = (Option<String>, Option<Vec<String>>, &'static str);
        let cases: [Case; 5] = [
            (None, None, "give url"),
            (None, Some(vec![]), "give url"),
            (
                Some("https://a.example/".into()),
                Some(vec!["https://b.example/".into()]),
                "not both",
            ),
            (
                None,
                Some(vec![
                    "https://a.example/".into(),
                    "https://a.example/".into(),
                ]),
                "twice",
            ),
            (
                None,
                Some(
                    (0..=MAX_URLS)
                        .map(|i| format!("https://{i}.example/"))
                        .collect(),
                ),
                "at most 5",
            ),
        ];
        for (url, urls, says) in cases {
            match policy().validate_urls(url, urls) {
                Err(UrlError::Invalid(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
        let forbidden = policy().validate_urls(
            None,
            Some(vec![
                "https://a.example/".into(),
                "https://10.0.0.1/".into(),
            ]),
        );
        assert!(matches!(forbidden, Err(UrlError::Forbidden(m)) if m.starts_with("URL 2")));
    }

    #[test]
    fn stored_lists_read_back_and_a_single_url_stays_plain() {
        let urls = vec![
            Url::parse("https://a.example/").unwrap(),
            Url::parse("https://b.example/x?y=1").unwrap(),
        ];
        assert_eq!(decode_urls(&encode_urls(&urls)).unwrap(), urls);
        assert_eq!(encode_urls(&urls[..1]), "https://a.example/");
        assert_eq!(decode_urls("https://a.example/").unwrap(), urls[..1]);
        assert!(decode_urls("[]").is_err());
        assert!(decode_urls("[1]").is_err());
    }
}
