//! Where connections come from: a TCP socket in production, anything that
//! carries bytes both ways in tests.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A source of connections for [`run`](crate::run).
///
/// `main` serves on a [`TcpListener`]. A test can hand out one half of a
/// `tokio::io::duplex` pipe per connection and drive the whole relay
/// (hyper, the routes, the WebSocket upgrade) in-process, without a port;
/// TLS, the header timeout and `--max-connections` apply to any source
/// alike.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address, which the per-IP
    /// limits and the logs see. The accept loop awaits it in a `select!`
    /// with the shutdown: it must be cancel-safe. After an error the loop
    /// pauses a moment and asks again.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// The address served on; without `--public-url` the relay's public
    /// URL is this address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = TcpListener::accept(self).await?;
        // Frames are small and must not wait for more to fill a segment.
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}
