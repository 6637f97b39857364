//! JSON bodies for the answers hyper writes itself.
//!
//! A request hyper cannot parse (garbage, a URI over 64 KiB, more than 100
//! headers or a header section over its buffer) never reaches the router:
//! hyper answers `400`, `414` or `431` on its own, with an empty body, and
//! closes. Clients of this API expect the JSON error body on every error,
//! so the socket is wrapped and that one answer is rewritten on its way
//! out. hyper writes it in a single buffer of a fixed shape (status line,
//! `connection: close`, `content-length: 0`, `date`); the router never
//! sends those statuses without a body, so the match cannot take one of
//! the application's answers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket whose hyper-made parse-error answers carry the JSON error body.
pub struct JsonParseErrors<T> {
    inner: T,
    /// A rewritten answer, and how much of it is written: owed to the
    /// socket before anything else.
    owed: Vec<u8>,
    written: usize,
}

impl<T> JsonParseErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            owed: Vec::new(),
            written: 0,
        }
    }
}

/// The JSON answer standing in for hyper's empty one, if `buf` is one.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";
    let (status_line, code, message) = if buf.starts_with(b"HTTP/1.1 400 Bad Request") {
        (
            "400 Bad Request",
            "bad_request",
            "malformed HTTP request: check the request line and header syntax",
        )
    } else if buf.starts_with(b"HTTP/1.1 414 URI Too Long") {
        (
            "414 URI Too Long",
            "uri_too_long",
            "the request URI is too long (at most 64 KiB): send data in the body",
        )
    } else if buf.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large") {
        (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "too many request headers (at most 100) or a header section too large",
        )
    } else {
        return None;
    };
    let is_hypers = buf.ends_with(b"\r\n\r\n")
        && buf.windows(EMPTY.len()).any(|w| w == EMPTY)
        && !buf
            .windows(13)
            .any(|w| w.eq_ignore_ascii_case(b"content-type:"));
    if !is_hypers {
        return None;
    }
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Writes what is owed; ready once nothing is.
    fn poll_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.owed.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.owed[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_owed(cx))?;
        if let Some(answer) = rewrite(buf) {
            self.owed = answer;
            self.written = 0;
            // The rewritten answer is ours to deliver now; hyper flushes
            // (or shuts down) next, which finishes it.
            let _ = self.poll_owed(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_owed(cx))?;
        // hyper's own answer has no body: one non-empty slice.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(answer) = rewrite(only)
        {
            let len = only.len();
            self.owed = answer;
            self.written = 0;
            let _ = self.poll_owed(cx)?;
            return Poll::Ready(Ok(len));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_owed(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_owed(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPERS_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 04:29:54 GMT\r\n\r\n";

    #[test]
    fn hypers_empty_answers_get_the_json_body() {
        let answer = String::from_utf8(rewrite(HYPERS_400).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");

        let uri = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(rewrite(uri).is_some());
        let headers = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(rewrite(headers).is_some());
    }

    #[test]
    fn the_applications_answers_pass_untouched() {
        // The router's own 400s carry a body and a content type.
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(app).is_none());
        let ok = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(ok).is_none());
        // A body chunk that merely starts like a status line.
        assert!(rewrite(b"HTTP/1.1 400 Bad Request and more").is_none());
    }

    #[tokio::test]
    async fn the_rewrite_reaches_the_socket_whole() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(16);
        let mut server = JsonParseErrors::new(server);
        let writer = tokio::spawn(async move {
            server.write_all(HYPERS_400).await.unwrap();
            server.shutdown().await.unwrap();
        });
        let mut got = String::new();
        let mut client = client;
        client.read_to_string(&mut got).await.unwrap();
        writer.await.unwrap();
        assert!(got.ends_with(r#""code":"bad_request","message":"malformed HTTP request: check the request line and header syntax"}}"#), "{got}");
    }
}
