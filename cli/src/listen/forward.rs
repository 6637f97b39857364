//! Forward mode: POST each event's raw body to a local URL.
//!
//! A 2xx answer acks; any other status, a refused connection or no answer
//! within `--forward-timeout` nacks. Redirects are not followed (a 3xx
//! nacks): following one would turn the POST into a GET and lose the body.
//! Proxy variables are ignored, since targets are almost always local.

use std::time::Duration;

use super::headers::{ExtraHeader, forward_headers};
use super::outcome::Outcome;
use super::post::{PostError, Poster, Target};
use super::route::{Route, pick};
use crate::agent::frame::{Event, raw_body};
use crate::ui::{Ui, short_duration};

/// POSTs events to their route.
pub struct Forwarder {
    routes: Vec<Route>,
    /// One per route, in the same order.
    targets: Vec<Target>,
    poster: Poster,
    extra: Vec<ExtraHeader>,
    timeout: Duration,
    ui: Ui,
}

impl Forwarder {
    /// A forwarder over `routes`, adding `extra` headers, giving up after
    /// `timeout`; `insecure` accepts any certificate from the targets.
    pub fn new(
        routes: Vec<Route>,
        extra: Vec<ExtraHeader>,
        timeout: Duration,
        insecure: bool,
        ui: Ui,
    ) -> anyhow::Result<Self> {
        // `--ca-cert` applies here too: a local app on https with the same
        // private CA, or its own self-signed certificate.
        let builder = if insecure {
            reqwest::Client::builder().tls_danger_accept_invalid_certs(true)
        } else {
            crate::trust::http_client()
        };
        let client = builder
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let mut poster = Poster::new(client, timeout);
        let targets = routes
            .iter()
            .map(|route| poster.target(&route.url))
            .collect();
        Ok(Self {
            routes,
            targets,
            poster,
            extra,
            timeout,
            ui,
        })
    }

    /// The routes, for the line that says where events go.
    pub fn describe(&self) -> String {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|route| match &route.pattern {
                Some(pattern) => format!("{} ({pattern})", route.url),
                None => route.url.to_string(),
            })
            .collect();
        routes.join(", ")
    }

    /// Forwards one event to the first route that takes it.
    pub async fn forward(&self, frame: &Event) -> Outcome {
        let Some(index) = pick(&self.routes, &frame.event_type) else {
            return Outcome::Skipped {
                why: "no --forward route matches".to_owned(),
            };
        };
        let (route, target) = (&self.routes[index], &self.targets[index]);
        let body = match raw_body(frame) {
            Ok(body) => body,
            Err(err) => {
                return Outcome::Failed {
                    reason: err.to_string(),
                };
            }
        };
        let (headers, invalid) =
            forward_headers(&frame.headers, &frame.id, frame.attempt, &self.extra);
        if !invalid.is_empty() {
            self.ui.detail(format!(
                "event {}: dropped headers HTTP cannot carry: {}",
                frame.id,
                invalid.join(", ")
            ));
        }
        match self.poster.post(target, headers, body).await {
            Ok((status, answer)) => {
                // Only the status decides, but with -v a failure shows what
                // the app said (the first KiB, escaped).
                // `200 POST http://localhost:3000/hooks`, as the event line shows it.
                let line = format!("{} POST {}", status.as_u16(), route.url);
                if status.is_success() {
                    Outcome::Done { status: line }
                } else {
                    if !answer.is_empty() {
                        self.ui.detail(format!(
                            "event {}: {line} answered: {}",
                            frame.id,
                            answer_excerpt(&answer)
                        ));
                    }
                    Outcome::Failed { reason: line }
                }
            }
            Err(PostError::Timeout) => Outcome::Failed {
                reason: format!(
                    "no answer from {} within {}",
                    route.url,
                    short_duration(self.timeout)
                ),
            },
            Err(PostError::Connect { tls: true, cause }) => Outcome::Failed {
                reason: format!(
                    "TLS handshake with {} failed: {cause} (trust its certificate with --ca-cert FILE, or --forward-insecure for a local app)",
                    route.url,
                ),
            },
            Err(PostError::Connect { tls: false, cause }) => Outcome::Failed {
                reason: format!(
                    "could not connect to {} (is your app running?): {cause}",
                    route.url,
                ),
            },
            Err(PostError::Other(reason)) => Outcome::Failed { reason },
        }
    }
}

/// The first KiB of an app's answer, for a terminal line: lossy UTF-8,
/// control characters made visible, `...` when cut.
fn answer_excerpt(answer: &[u8]) -> String {
    const EXCERPT: usize = 1024;
    let cut = answer.len() > EXCERPT;
    let text = String::from_utf8_lossy(&answer[..answer.len().min(EXCERPT)]);
    let mut shown = crate::ui::printable(&text).into_owned();
    if cut {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use lobster_shared::wire::EventFrame;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// Serves one request: answers `status` after `delay`, returns the
    /// request head and body.
    async fn serve_once(
        status: u16,
        delay: Duration,
    ) -> (SocketAddr, JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8(data[..head_end].to_vec())
                .unwrap()
                .to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            while data.len() < head_end + length {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
            }
            tokio::time::sleep(delay).await;
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(answer.as_bytes()).await;
            (head, data[head_end..].to_vec())
        });
        (addr, task)
    }

    fn forwarder(target: &str, timeout: Duration) -> Forwarder {
        let routes = vec![Route::parse(target).unwrap()];
        let extra = vec![ExtraHeader::parse("X-Extra: yes").unwrap()];
        Forwarder::new(routes, extra, timeout, false, Ui::silent()).unwrap()
    }

    fn frame(body: &[u8]) -> Event {
        let (body, body_encoding) = EventFrame::encode_body(body);
        crate::agent::frame::shared(EventFrame {
            id: "evt_7".into(),
            event_type: "message.received".into(),
            received_at: String::new(),
            attempt: 2,
            headers: vec![
                ("host".into(), "relay.example.com".into()),
                ("webhook-signature".into(), "v1,abc".into()),
                ("content-length".into(), "999".into()),
            ],
            body,
            body_encoding,
            replay: false,
        })
    }

    #[tokio::test]
    async fn a_2xx_acks_and_the_body_arrives_byte_for_byte() {
        let (addr, request) = serve_once(204, Duration::ZERO).await;
        let raw = [0xff, 0x00, 0xfe, b'{'];
        let outcome = forwarder(&format!("{addr}/hooks"), Duration::from_secs(5))
            .forward(&frame(&raw))
            .await;
        assert_eq!(
            outcome,
            Outcome::Done {
                status: format!("204 POST http://{addr}/hooks")
            }
        );
        let (head, body) = request.await.unwrap();
        assert_eq!(body, raw);
        assert!(head.starts_with("post /hooks http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
        assert!(head.contains("content-length: 4\r\n"), "{head}");
        assert!(head.contains("webhook-signature: v1,abc\r\n"), "{head}");
        assert!(head.contains("lobster-relay-event-id: evt_7\r\n"), "{head}");
        assert!(head.contains("lobster-relay-attempt: 2\r\n"), "{head}");
        assert!(head.contains("x-extra: yes\r\n"), "{head}");
    }

    /// Events to a plain http:// app reuse one kept-alive connection: the
    /// app accepts once and reads both requests from it.
    #[tokio::test]
    async fn one_connection_carries_many_events() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            for _ in 0..2 {
                let mut data = Vec::new();
                while !data.windows(6).any(|w| w == b"\r\n\r\n{}") {
                    let n = socket.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the connection was closed");
                    data.extend_from_slice(&buf[..n]);
                }
                seen.push(String::from_utf8(data).unwrap().to_lowercase());
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        let forwarder = forwarder(&format!("{addr}/hooks"), Duration::from_secs(5));
        for _ in 0..2 {
            let outcome = forwarder.forward(&frame(b"{}")).await;
            assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
        }
        let seen = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("both requests came over the first connection")
            .unwrap();
        for head in seen {
            assert!(head.starts_with("post /hooks http/1.1\r\n"), "{head}");
            assert!(head.contains("accept: */*\r\n"), "{head}");
            assert!(head.contains("content-length: 2\r\n"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
        }
    }

    /// A kept-alive connection the app closed while it was idle is not
    /// used again: the next event goes over a new one and is acked.
    #[tokio::test]
    async fn a_connection_the_app_closed_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                while !data.windows(6).any(|w| w == b"\r\n\r\n{}") {
                    let n = socket.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the connection was closed");
                    data.extend_from_slice(&buf[..n]);
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                socket.write_all(answer.as_bytes()).await.unwrap();
                // Dropped here: closed without a word, as an app's idle
                // timeout does.
            }
        });
        let forwarder = forwarder(&format!("{addr}/hooks"), Duration::from_secs(5));
        let first = forwarder.forward(&frame(b"{}")).await;
        assert!(matches!(first, Outcome::Done { .. }), "{first:?}");
        // The app's close reaches the kept connection before the next event.
        tokio::time::timeout(Duration::from_secs(5), async {
            while forwarder.poster.open_idle() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the kept connection saw the app close it");
        let second = forwarder.forward(&frame(b"{}")).await;
        assert!(matches!(second, Outcome::Done { .. }), "{second:?}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the second event came over a second connection")
            .unwrap();
    }

    #[tokio::test]
    async fn other_statuses_nack() {
        let (addr, _request) = serve_once(500, Duration::ZERO).await;
        let outcome = forwarder(&addr.to_string(), Duration::from_secs(5))
            .forward(&frame(b"{}"))
            .await;
        let Outcome::Failed { reason } = outcome else {
            panic!("not a nack: {outcome:?}")
        };
        assert!(reason.starts_with("500 POST http://"), "{reason}");
    }

    #[tokio::test]
    async fn a_refused_connection_nacks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = forwarder(&addr.to_string(), Duration::from_secs(5))
            .forward(&frame(b"{}"))
            .await;
        let Outcome::Failed { reason } = outcome else {
            panic!("not a nack: {outcome:?}")
        };
        assert!(reason.contains("could not connect"), "{reason}");
    }

    #[tokio::test]
    async fn no_answer_within_the_timeout_nacks() {
        let (addr, _request) = serve_once(200, Duration::from_secs(30)).await;
        let outcome = forwarder(&addr.to_string(), Duration::from_millis(200))
            .forward(&frame(b"{}"))
            .await;
        let Outcome::Failed { reason } = outcome else {
            panic!("not a nack: {outcome:?}")
        };
        assert!(reason.contains("within 200ms"), "{reason}");
    }
}
