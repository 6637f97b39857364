//! TLS termination: the certificate the relay serves, reloaded without a
//! restart.
//!
//! [`CertStore`] is rustls' certificate resolver: each handshake takes the
//! current [`CertifiedKey`], so swapping it changes what new connections
//! see while established ones keep theirs. It reloads on SIGHUP and when the
//! files' modification times change (polled); a reload that fails keeps the
//! old certificate and logs a warning.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use anyhow::{Context, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// The certificate being served, and where it comes from.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of (cert, key) at the last load attempt.
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl CertStore {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let seen = mtimes(files);
        let key = load_certified_key(files, &provider)?;
        Ok(Arc::new(CertStore {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// A rustls server configuration resolving through this store.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the files again; on failure the old certificate stays.
    pub fn reload(&self, why: &str) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = mtimes(&self.files);
        match load_certified_key(&self.files, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                tracing::info!(reason = why, cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(err) => tracing::warn!(
                reason = why,
                error = format!("{err:#}"),
                "TLS certificate reload failed; still serving the previous certificate"
            ),
        }
    }

    /// Whether either file changed since the last load attempt.
    fn changed(&self) -> bool {
        let now = mtimes(&self.files);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != now
    }

    /// Reloads on SIGHUP and when the files change, until `shutdown`.
    ///
    /// The SIGHUP handler is installed when this is called, not when the
    /// future is first polled: a SIGHUP right after start-up must reload,
    /// not kill the process.
    pub fn watch(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let hup = hangup();
        self.watch_with(hup, shutdown)
    }

    #[cfg_attr(not(unix), allow(unused_mut, unused_variables))]
    async fn watch_with(self: Arc<Self>, mut hup: Hangup, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.files.reload_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangup => self.reload("SIGHUP"),
                _ = every.tick() => if self.changed() { self.reload("files changed") },
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; TLS files are still polled");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup() -> Hangup {}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn mtimes(files: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (mtime(&files.cert), mtime(&files.key))
}

fn load_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let (cert_path, key_path) = (files.cert.display(), files.key.display());
    let cert_bytes = std::fs::read(&files.cert)
        .with_context(|| format!("cannot read --tls-cert {cert_path}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--tls-cert {cert_path} is not valid PEM: {e}"))?;
    if chain.is_empty() {
        bail!(
            "--tls-cert {cert_path} holds no certificate: it must be PEM with -----BEGIN CERTIFICATE----- blocks, the server's first"
        );
    }
    let key_bytes =
        std::fs::read(&files.key).with_context(|| format!("cannot read --tls-key {key_path}"))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        anyhow::anyhow!(
            "--tls-key {key_path} holds no usable private key ({e}): it must be PEM (PKCS#8, PKCS#1 or SEC1)"
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "--tls-key {key_path} does not fit --tls-cert {cert_path} ({e}): pass the key the certificate was issued for"
        )
    })
}
