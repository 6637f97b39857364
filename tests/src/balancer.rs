//! A WebSocket-aware load balancer in miniature: a TCP proxy that sends each
//! new connection to the first backend that accepts it. When a relay dies,
//! new connections go to the next one, as behind a real balancer.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Balancer {
    port: u16,
    backends: Arc<Mutex<Vec<u16>>>,
    task: JoinHandle<()>,
}

impl Balancer {
    pub async fn start(backends: Vec<u16>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let backends = Arc::new(Mutex::new(backends));
        let shared = backends.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let order = shared.lock().unwrap().clone();
                tokio::spawn(proxy(client, order));
            }
        });
        Ok(Balancer {
            port,
            backends,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes the preference order for new connections.
    pub fn set_backends(&self, ports: Vec<u16>) {
        *self.backends.lock().unwrap() = ports;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy(mut client: TcpStream, order: Vec<u16>) {
    for port in order {
        if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
    }
}
