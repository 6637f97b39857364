//! The HTTP CONNECT tunnel: ask the proxy for a byte pipe to the relay,
//! then run TLS and the WebSocket upgrade through it as if connected
//! directly.
//!
//! hyper-util has a CONNECT connector too, but it reports every refusal
//! other than 407 as one "unsuccessful" error, and the user needs the
//! proxy's status to know what to do.

use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Proxy;

/// The proxy's answer head may be this long at most; real ones are a few
/// hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

/// How a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// No TCP connection to the proxy.
    #[error("cannot reach the proxy: {0}")]
    Unreachable(std::io::Error),
    /// The connection broke while asking.
    #[error("the proxy connection failed during CONNECT: {0}")]
    Io(std::io::Error),
    /// The proxy closed the connection without a full answer.
    #[error("the proxy closed the connection without answering CONNECT")]
    Closed,
    /// 407 (or 401): credentials missing or wrong.
    #[error("the proxy wants authentication (HTTP {0})")]
    AuthRequired(u16),
    /// Any other answer than 2xx.
    #[error("the proxy refused the tunnel: HTTP {status} {reason}")]
    Refused { status: u16, reason: String },
    /// Not an HTTP answer, or one too long, or bytes after a 2xx head.
    #[error("the proxy's answer to CONNECT is not valid HTTP ({0})")]
    Garbled(String),
}

/// Connects to `proxy` and opens a tunnel to `target` (`host:port`) within
/// `timeout` (the caller's overall deadline bounds it as well).
pub async fn open(
    proxy: &Proxy,
    target: &str,
    timeout: Duration,
) -> Result<TcpStream, TunnelError> {
    let connecting = TcpStream::connect((proxy.host.as_str(), proxy.port));
    let mut stream = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(TunnelError::Unreachable(err)),
        Err(_) => {
            return Err(TunnelError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {}s", timeout.as_secs()),
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    handshake(&mut stream, target, proxy.auth.as_ref()).await?;
    Ok(stream)
}

/// Sends `CONNECT target` and reads the answer head. On success, nothing
/// past the head has been read: the stream belongs to the relay.
pub async fn handshake<S>(
    io: &mut S,
    target: &str,
    auth: Option<&HeaderValue>,
) -> Result<(), TunnelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&request(target, auth))
        .await
        .map_err(TunnelError::Io)?;
    io.flush().await.map_err(TunnelError::Io)?;
    // Byte by byte: the head is short, and a 2xx answer must leave every
    // later byte (the relay's TLS or HTTP) in the socket.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        let n = io.read(&mut byte).await.map_err(TunnelError::Io)?;
        if n == 0 {
            return Err(TunnelError::Closed);
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return answer(&head);
        }
        if head.len() > MAX_HEAD {
            return Err(TunnelError::Garbled(format!(
                "no end of headers in {MAX_HEAD} bytes"
            )));
        }
    }
}

/// The CONNECT request: the target in authority form, and the credentials.
fn request(target: &str, auth: Option<&HeaderValue>) -> Vec<u8> {
    let mut out = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: lobster-relay/{}\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    if let Some(auth) = auth {
        out.extend_from_slice(b"Proxy-Authorization: ");
        out.extend_from_slice(auth.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What a complete answer head means.
fn answer(head: &[u8]) -> Result<(), TunnelError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(TunnelError::Garbled("incomplete head".into()));
        }
        Err(err) => {
            let first = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or(b""))
                .trim()
                .chars()
                .take(80)
                .collect::<String>();
            return Err(TunnelError::Garbled(format!("{err}: {first:?}")));
        }
    }
    let status = response.code.unwrap_or(0);
    match status {
        200..=299 => Ok(()),
        // tinyproxy answers wrong credentials with 401 (and missing ones
        // with 407); before the tunnel exists, either can only be the proxy.
        401 | 407 => Err(TunnelError::AuthRequired(status)),
        _ => Err(TunnelError::Refused {
            status,
            reason: response.reason.unwrap_or("").trim().to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    /// Runs the handshake against a "proxy" that answers `reply` once it has
    /// read the request head; returns the result and the request it saw.
    async fn against(
        reply: &'static [u8],
        auth: Option<&str>,
    ) -> (Result<(), TunnelError>, String) {
        let (mut client, mut proxy) = duplex(64 * 1024);
        let serve = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            while !seen.ends_with(b"\r\n\r\n") {
                if proxy.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                seen.push(byte[0]);
            }
            proxy.write_all(reply).await.unwrap();
            // Dropping `proxy` closes the pipe: the client sees the end.
            String::from_utf8(seen).unwrap()
        });
        let auth = auth.map(|a| HeaderValue::from_str(a).unwrap());
        let result = handshake(&mut client, "relay.test:443", auth.as_ref()).await;
        drop(client);
        (result, serve.await.unwrap())
    }

    #[tokio::test]
    async fn a_200_opens_the_tunnel_and_sends_the_credentials() {
        let reply = b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n";
        let (result, seen) = against(reply, Some("Basic dTpw")).await;
        result.unwrap();
        assert!(
            seen.starts_with("CONNECT relay.test:443 HTTP/1.1\r\n"),
            "{seen}"
        );
        assert!(seen.contains("\r\nHost: relay.test:443\r\n"), "{seen}");
        assert!(
            seen.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
            "{seen}"
        );
        let (result, seen) = against(b"HTTP/1.0 200 OK\r\n\r\n", None).await;
        result.unwrap();
        assert!(!seen.contains("Proxy-Authorization"), "{seen}");
    }

    #[tokio::test]
    async fn bytes_after_the_head_stay_in_the_stream() {
        let (mut client, mut proxy) = duplex(1024);
        proxy
            .write_all(b"HTTP/1.1 200 OK\r\n\r\nfrom the relay")
            .await
            .unwrap();
        handshake(&mut client, "r:1", None).await.unwrap();
        let mut rest = [0u8; 14];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"from the relay");
    }

    #[tokio::test]
    async fn refusals_keep_their_status() {
        let (result, _) = against(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n", None).await;
        assert!(
            matches!(result, Err(TunnelError::AuthRequired(_))),
            "{result:?}"
        );
        let wrong =
            b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Tinyproxy\"\r\n\r\n";
        let (result, _) = against(wrong, None).await;
        assert!(
            matches!(result, Err(TunnelError::AuthRequired(_))),
            "{result:?}"
        );
        let (result, _) = against(b"HTTP/1.1 403 Access denied\r\n\r\n<html>", None).await;
        match result {
            Err(TunnelError::Refused { status, reason }) => {
                assert_eq!((status, reason.as_str()), (403, "Access denied"));
            }
            other => panic!("{other:?}"),
        }
        let (result, _) = against(b"HTTP/1.1 502 \r\n\r\n", None).await;
        assert!(
            matches!(result, Err(TunnelError::Refused { status: 502, .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn garbage_early_close_and_endless_heads_are_errors() {
        let (result, _) = against(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", None).await;
        assert!(matches!(result, Err(TunnelError::Garbled(_))), "{result:?}");
        let (result, _) = against(b"HTTP/1.1 200 OK\r\n", None).await;
        assert!(matches!(result, Err(TunnelError::Closed)), "{result:?}");
        let endless: &'static [u8] = Box::leak(
            [b"HTTP/1.1 200 OK\r\n".as_slice(), &[b'x'; MAX_HEAD + 10]]
                .concat()
                .into_boxed_slice(),
        );
        let (result, _) = against(endless, None).await;
        assert!(matches!(result, Err(TunnelError::Garbled(_))), "{result:?}");
    }
}
