//! Which proxy, if any, a connection to the relay goes through.
//!
//! The rules are reqwest's own: its matcher (`hyper_util`'s
//! [`Matcher`]) reads the same variables, so the WebSocket and the HTTP
//! API calls always agree. `https`/`wss` use `HTTPS_PROXY`, `http`/`ws`
//! use `HTTP_PROXY`, each falling back to `ALL_PROXY`; upper case wins over
//! lower case; `NO_PROXY` lists hosts (with their subdomains), IP addresses
//! and CIDR ranges, or `*`. Like reqwest (and curl), nothing is proxied
//! when `REQUEST_METHOD` is set: a CGI program would otherwise take its
//! proxy from a request header ("httpoxy").

use std::fmt;
use std::sync::OnceLock;

use http::HeaderValue;
use hyper_util::client::proxy::matcher::Matcher;
use reqwest::Url;

use crate::exit::Fatal;

/// The proxy variables as the process found them.
#[derive(Clone, Default)]
pub struct ProxyEnv {
    all: Option<(&'static str, String)>,
    http: Option<(&'static str, String)>,
    https: Option<(&'static str, String)>,
    no: Option<(&'static str, String)>,
    cgi: bool,
}

/// A proxy chosen for one relay URL.
#[derive(Clone)]
pub struct Proxy {
    /// `http://host:port`: what messages show, never the credentials.
    pub shown: String,
    /// The variable that named it (`HTTPS_PROXY`, `all_proxy`, ...).
    pub var: &'static str,
    /// `http`, `https`, `socks5`, ...: only `http` can carry the WebSocket.
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// `Basic ...` from `user:pass@` (percent-decoded), marked sensitive.
    pub auth: Option<HeaderValue>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("shown", &self.shown)
            .field("var", &self.var)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.shown, self.var)
    }
}

/// The process's proxy variables, read once.
pub fn env() -> &'static ProxyEnv {
    static ENV: OnceLock<ProxyEnv> = OnceLock::new();
    ENV.get_or_init(|| ProxyEnv::from_lookup(|name| std::env::var(name).ok()))
}

impl ProxyEnv {
    /// Reads the variables through `lookup` (the environment, or a test's
    /// map). An empty value counts as unset, as reqwest and curl do.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|name| lookup(name).map(|value| (name, value)))
                .filter(|(_, value)| !value.trim().is_empty())
        };
        Self {
            all: first(["ALL_PROXY", "all_proxy"]),
            http: first(["HTTP_PROXY", "http_proxy"]),
            https: first(["HTTPS_PROXY", "https_proxy"]),
            no: first(["NO_PROXY", "no_proxy"]),
            cgi: lookup("REQUEST_METHOD").is_some(),
        }
    }

    /// The proxy for `url` (`http`, `https`, `ws` or `wss`), if any. A set
    /// variable that is not a proxy URL is an error, not a silent direct
    /// connection.
    pub fn proxy_for(&self, url: &Url) -> Result<Option<Proxy>, Fatal> {
        let secure = matches!(url.scheme(), "https" | "wss");
        let own = if secure { &self.https } else { &self.http };
        let Some((var, value)) = own.as_ref().or(self.all.as_ref()) else {
            return Ok(None);
        };
        if self.cgi {
            return Ok(None);
        }
        let bad = |why: &str| {
            Fatal::usage(
                format!("{var} is not a proxy URL ({why})"),
                format!("set {var} to http://HOST:PORT, or http://USER:PASSWORD@HOST:PORT"),
            )
        };
        // The matcher only sees the scheme, host and port; the path never
        // matters for a proxy choice.
        let host = url
            .host_str()
            .ok_or_else(|| bad("the relay URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let probe: http::Uri =
            format!("{}://{host}:{port}/", if secure { "https" } else { "http" })
                .parse()
                .map_err(|_| bad("the relay URL cannot be matched"))?;
        let mut matcher = Matcher::builder();
        matcher = if secure {
            matcher.https(value.as_str())
        } else {
            matcher.http(value.as_str())
        };
        if let Some((_, no)) = &self.no {
            matcher = matcher.no(no.as_str());
        }
        let matcher = matcher.build();
        if matcher.intercept(&probe).is_none() {
            // Either NO_PROXY matched, or the value did not parse: tell
            // them apart by asking again without NO_PROXY.
            let unfiltered = if secure {
                Matcher::builder().https(value.as_str())
            } else {
                Matcher::builder().http(value.as_str())
            };
            return match unfiltered.build().intercept(&probe) {
                None => Err(bad(&format!("{value:?} has no host, or an unknown scheme"))),
                Some(_) => Ok(None),
            };
        }
        let intercept = matcher.intercept(&probe).expect("matched above");
        let uri = intercept.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let proxy_host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let proxy_port = uri.port_u16().unwrap_or(match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => 1080,
        });
        let shown_host = match proxy_host.contains(':') {
            true => format!("[{proxy_host}]"),
            false => proxy_host.clone(),
        };
        Ok(Some(Proxy {
            shown: format!("{scheme}://{shown_host}:{proxy_port}"),
            var,
            scheme,
            host: proxy_host,
            port: proxy_port,
            auth: intercept.basic_auth().cloned(),
        }))
    }

    /// [`Self::proxy_for`], keeping only a proxy that can tunnel the
    /// WebSocket: an HTTP proxy answering `CONNECT`.
    pub fn tunnel_for(&self, url: &Url) -> Result<Option<Proxy>, Fatal> {
        let Some(proxy) = self.proxy_for(url)? else {
            return Ok(None);
        };
        if proxy.scheme != "http" {
            return Err(Fatal::usage(
                format!(
                    "{} names a {} proxy ({}); the WebSocket to the relay can only go \
                     through an HTTP proxy (http://...) that answers CONNECT",
                    proxy.var, proxy.scheme, proxy.shown
                ),
                format!(
                    "set {} to the proxy's http://HOST:PORT address (the tunnel still \
                     carries TLS to the relay), or NO_PROXY={} to connect directly",
                    proxy.var,
                    url.host_str().unwrap_or("HOST")
                ),
            ));
        }
        Ok(Some(proxy))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyEnv::from_lookup(|name| map.get(name).cloned())
    }

    fn via(env: &ProxyEnv, url: &str) -> Option<String> {
        env.proxy_for(&Url::parse(url).unwrap())
            .unwrap()
            .map(|p| p.to_string())
    }

    #[test]
    fn the_scheme_picks_the_variable_and_all_proxy_is_the_fallback() {
        let both = env(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("HTTP_PROXY", "http://plain:8080"),
        ]);
        let wss = "wss://relay.example.com/api/v1/agent/connect";
        assert_eq!(
            via(&both, wss).unwrap(),
            "http://secure:3128 (from HTTPS_PROXY)"
        );
        assert_eq!(
            via(&both, "https://relay.example.com").unwrap(),
            "http://secure:3128 (from HTTPS_PROXY)"
        );
        assert_eq!(
            via(&both, "ws://relay.example.com:8080/x").unwrap(),
            "http://plain:8080 (from HTTP_PROXY)"
        );
        let all = env(&[
            ("ALL_PROXY", "http://every:1"),
            ("HTTP_PROXY", "http://plain:2"),
        ]);
        assert_eq!(via(&all, wss).unwrap(), "http://every:1 (from ALL_PROXY)");
        assert_eq!(
            via(&all, "ws://x").unwrap(),
            "http://plain:2 (from HTTP_PROXY)"
        );
        assert_eq!(via(&env(&[]), wss), None);
        // An HTTP proxy is not used for HTTPS, as in reqwest and curl.
        assert_eq!(via(&env(&[("HTTP_PROXY", "http://plain:2")]), wss), None);
    }

    #[test]
    fn upper_case_wins_and_empty_means_unset() {
        let both = env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ]);
        assert_eq!(
            via(&both, "wss://r").unwrap(),
            "http://upper:1 (from HTTPS_PROXY)"
        );
        let lower = env(&[("https_proxy", "http://lower:2")]);
        assert_eq!(
            via(&lower, "wss://r").unwrap(),
            "http://lower:2 (from https_proxy)"
        );
        let empty = env(&[("HTTPS_PROXY", ""), ("ALL_PROXY", "http://all:3")]);
        assert_eq!(
            via(&empty, "wss://r").unwrap(),
            "http://all:3 (from ALL_PROXY)"
        );
    }

    #[test]
    fn no_proxy_matches_hosts_subdomains_ips_cidrs_and_star() {
        let proxied = |no: &str, url: &str| {
            via(&env(&[("ALL_PROXY", "http://p:1"), ("NO_PROXY", no)]), url).is_some()
        };
        assert!(!proxied("relay.example.com", "wss://relay.example.com"));
        assert!(!proxied("example.com", "wss://relay.example.com"));
        assert!(!proxied(".example.com", "wss://relay.example.com"));
        assert!(proxied("example.com", "wss://notexample.com"));
        assert!(proxied("other.org, example.net", "wss://relay.example.com"));
        assert!(!proxied(
            "other.org, relay.example.com",
            "wss://relay.example.com"
        ));
        assert!(!proxied("*", "wss://anything.test"));
        assert!(!proxied("127.0.0.1", "ws://127.0.0.1:8080"));
        assert!(!proxied("10.0.0.0/8", "ws://10.1.2.3:8080"));
        assert!(proxied("10.0.0.0/8", "ws://11.1.2.3:8080"));
        assert!(!proxied("::1", "ws://[::1]:8080"));
        assert!(proxied("localhost", "ws://127.0.0.1:8080"));
        let lower = env(&[("ALL_PROXY", "http://p:1"), ("no_proxy", "relay.test")]);
        assert_eq!(via(&lower, "wss://relay.test"), None);
    }

    #[test]
    fn credentials_are_decoded_into_basic_auth_and_never_shown() {
        let env = env(&[("HTTPS_PROXY", "http://us%40er:p%3Ass%2Fw@proxy.corp:3128")]);
        let proxy = env
            .proxy_for(&Url::parse("wss://relay.test").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(proxy.shown, "http://proxy.corp:3128");
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.corp", 3128));
        // base64("us@er:p:ss/w")
        let auth = proxy.auth.as_ref().unwrap();
        assert_eq!(auth, "Basic dXNAZXI6cDpzcy93");
        assert!(auth.is_sensitive());
        let debug = format!("{proxy:?} {proxy}");
        assert!(
            !debug.contains("p%3Ass") && !debug.contains("dXNAZXI6"),
            "{debug}"
        );
    }

    #[test]
    fn a_bare_host_port_is_an_http_proxy_on_port_80_by_default() {
        let env1 = env(&[("HTTP_PROXY", "proxy.corp:3128")]);
        assert_eq!(
            via(&env1, "ws://r").unwrap(),
            "http://proxy.corp:3128 (from HTTP_PROXY)"
        );
        let env2 = env(&[("HTTP_PROXY", "http://proxy.corp")]);
        assert_eq!(
            via(&env2, "ws://r").unwrap(),
            "http://proxy.corp:80 (from HTTP_PROXY)"
        );
        let env3 = env(&[("HTTP_PROXY", "http://[::1]:3128")]);
        let proxy = env3
            .proxy_for(&Url::parse("ws://r").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (proxy.host.as_str(), proxy.shown.as_str()),
            ("::1", "http://[::1]:3128")
        );
    }

    #[test]
    fn garbage_and_unsupported_schemes_are_usage_errors() {
        let url = Url::parse("wss://relay.test").unwrap();
        let garbage = env(&[("HTTPS_PROXY", "http://")])
            .proxy_for(&url)
            .unwrap_err();
        assert_eq!(garbage.code, crate::exit::ExitCode::Usage);
        assert!(
            garbage.message.contains("HTTPS_PROXY is not a proxy URL"),
            "{}",
            garbage.message
        );
        let ftp = env(&[("HTTPS_PROXY", "ftp://proxy:21")])
            .proxy_for(&url)
            .unwrap_err();
        assert!(ftp.message.contains("HTTPS_PROXY"), "{}", ftp.message);
        let socks = env(&[("ALL_PROXY", "socks5://proxy:1080")]);
        assert!(
            socks.proxy_for(&url).unwrap().is_some(),
            "reqwest's rules accept it"
        );
        let err = socks.tunnel_for(&url).unwrap_err();
        assert!(err.message.contains("socks5 proxy"), "{}", err.message);
        assert!(err.next_step.unwrap().contains("NO_PROXY=relay.test"));
        // NO_PROXY still wins over an unusable proxy.
        let bypassed = env(&[
            ("ALL_PROXY", "socks5://proxy:1080"),
            ("NO_PROXY", "relay.test"),
        ]);
        assert!(bypassed.tunnel_for(&url).unwrap().is_none());
    }

    #[test]
    fn a_cgi_environment_ignores_the_proxy_variables() {
        let cgi = env(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(via(&cgi, "ws://relay.test"), None);
    }
}
