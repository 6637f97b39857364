//! `--forward` targets: where an event is POSTed, chosen by its type.
//!
//! A target is a URL, written as loosely as people type it: `3000`,
//! `:3000`, `3000/hooks`, `localhost:3000`, `localhost:3000/hooks`, `127.0.0.1:9000/x` or
//! a full `http(s)://` URL; the scheme defaults to `http`. Prefixed with
//! `PATTERN=` it only takes events whose type matches the glob (e.g.
//! `'message.*=localhost:3000/messages'`). Routes are tried in the order
//! given and the first match wins; a plain URL matches everything.
//!
//! An event that matches no route is acked and logged as skipped, not
//! nacked: a nack would have the relay retry it up to 20 times for a
//! listener that was told not to want it. Leave a plain URL last to catch
//! everything else.

use reqwest::Url;

use crate::glob::Glob;

/// One `--forward` value: an optional event type pattern and a target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which event types this route takes; `None` takes all.
    pub pattern: Option<Glob>,
    /// Where matching events are POSTed.
    pub url: Url,
}

impl Route {
    /// Parses `URL` or `PATTERN=URL` (the clap value parser of `--forward`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        match split_pattern(value) {
            Some((pattern, target)) => Ok(Self {
                pattern: Some(Glob::new(pattern)),
                url: parse_target(target)?,
            }),
            None => Ok(Self {
                pattern: None,
                url: parse_target(value)?,
            }),
        }
    }

    /// True when this route takes events of `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|glob| glob.matches(event_type))
    }
}

/// The index of the first route that takes `event_type`.
pub fn pick(routes: &[Route], event_type: &str) -> Option<usize> {
    routes.iter().position(|route| route.matches(event_type))
}

/// Splits `PATTERN=URL`. The left side counts as a pattern only if it holds
/// no `/` and no `:`, so `localhost:3000/x?a=b` stays a URL.
fn split_pattern(value: &str) -> Option<(&str, &str)> {
    let (left, right) = value.split_once('=')?;
    let is_pattern =
        !left.is_empty() && !left.contains(['/', ':']) && !left.contains(char::is_whitespace);
    is_pattern.then_some((left, right))
}

/// Parses a forward target into an absolute `http(s)` URL.
pub fn parse_target(target: &str) -> Result<Url, String> {
    let target = target.trim();
    if target.is_empty() {
        return Err("give a URL to forward to, e.g. localhost:3000/webhooks".into());
    }
    // `3000`, `:3000` and `3000/hooks` mean a port on localhost.
    let no_colon = target.strip_prefix(':').unwrap_or(target);
    let (port, path) = no_colon.split_at(no_colon.find('/').unwrap_or(no_colon.len()));
    let full = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "http://localhost:{port}{}",
            if path.is_empty() { "/" } else { path }
        )
    } else if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let url = Url::parse(&full).map_err(|err| format!("{target:?} is not a URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{target:?}: only http:// and https:// targets are supported"
        ));
    }
    match url.host_str() {
        Some(host) if !host.is_empty() => Ok(url),
        _ => Err(format!("{target:?} has no host, e.g. localhost:3000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(target: &str) -> String {
        parse_target(target).unwrap().to_string()
    }

    #[test]
    fn host_and_port_get_the_http_scheme() {
        assert_eq!(url("localhost:3000"), "http://localhost:3000/");
        assert_eq!(url("localhost:3000/hooks"), "http://localhost:3000/hooks");
        assert_eq!(url("127.0.0.1:9000/x"), "http://127.0.0.1:9000/x");
        assert_eq!(url("localhost:3000/x?a=b"), "http://localhost:3000/x?a=b");
    }

    #[test]
    fn bare_ports_mean_localhost() {
        assert_eq!(url("3000"), "http://localhost:3000/");
        assert_eq!(url(":3000"), "http://localhost:3000/");
        assert_eq!(url("3000/hooks"), "http://localhost:3000/hooks");
        assert_eq!(url(":3000/a/b?c=d"), "http://localhost:3000/a/b?c=d");
    }

    #[test]
    fn full_urls_are_kept() {
        assert_eq!(url("https://example.com/in"), "https://example.com/in");
        assert_eq!(url("http://[::1]:8080/h"), "http://[::1]:8080/h");
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "   ",
            "ftp://x",
            "http://",
            "not a url",
            "localhost:99999",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn patterns_route_by_event_type() {
        let messages = Route::parse("message.*=localhost:3000/messages").unwrap();
        assert_eq!(messages.pattern, Some(Glob::new("message.*")));
        assert_eq!(messages.url.as_str(), "http://localhost:3000/messages");
        let rest = Route::parse("localhost:3000/other").unwrap();
        assert_eq!(rest.pattern, None);
        let routes = [messages, rest];
        assert_eq!(
            routes[pick(&routes, "message.sent").unwrap()].url.path(),
            "/messages"
        );
        assert_eq!(routes[pick(&routes, "ping").unwrap()].url.path(), "/other");
        assert!(pick(&routes[..1], "ping").is_none());
    }

    #[test]
    fn an_equals_sign_inside_a_url_is_not_a_pattern() {
        let route = Route::parse("http://localhost:3000/x?a=b").unwrap();
        assert_eq!(route.pattern, None);
        let route = Route::parse("ping=http://localhost:3000/x?a=b").unwrap();
        assert_eq!(route.pattern, Some(Glob::new("ping")));
        assert_eq!(route.url.query(), Some("a=b"));
        assert!(Route::parse("ping=").is_err());
    }
}
