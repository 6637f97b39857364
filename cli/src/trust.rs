//! Which TLS server certificates the CLI trusts: the platform's trust store,
//! plus the private CA of `--ca-cert` (env `LOBSTER_RELAY_CA_CERT`).
//!
//! The extra roots are set once per process, before any command runs, like
//! the rustls crypto provider: every HTTP client and WebSocket connector of
//! the process then builds from [`http_client`] and [`ws_connector`], so no
//! command can forget the flag.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::exit::Fatal;

static EXTRA_ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Reads the PEM certificates of `path`; a missing, unreadable or
/// certificate-less file is a usage error (exit code 2).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, Fatal> {
    let shown = path.display();
    let next =
        "pass --ca-cert (or LOBSTER_RELAY_CA_CERT) a PEM file holding the relay's CA certificate";
    let bytes = std::fs::read(path)
        .map_err(|err| Fatal::usage(format!("cannot read --ca-cert {shown}: {err}"), next))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|err| Fatal::usage(format!("--ca-cert {shown} is not valid PEM: {err}"), next))?;
    if certs.is_empty() {
        return Err(Fatal::usage(
            format!("--ca-cert {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            next,
        ));
    }
    Ok(certs)
}

/// Trusts the certificates of `path` too, for the rest of the process.
pub fn install_ca(path: Option<&Path>) -> Result<(), Fatal> {
    let roots = match path {
        Some(path) => load_ca(path)?,
        None => Vec::new(),
    };
    let _ = EXTRA_ROOTS.set(roots);
    Ok(())
}

fn extra_roots() -> &'static [CertificateDer<'static>] {
    EXTRA_ROOTS.get().map_or(&[], Vec::as_slice)
}

/// A reqwest builder trusting the platform store and the `--ca-cert`
/// certificates (as CAs, and each as itself: see [`PinnedOrPlatform`]).
pub fn http_client() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    if extra_roots().is_empty() {
        return builder;
    }
    match tls_config(&[b"h2", b"http/1.1"]) {
        Ok(config) => builder.tls_backend_preconfigured(config),
        // The platform verifier could not start: trust the file as CAs only.
        Err(_) => builder.tls_certs_merge(
            extra_roots()
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
        ),
    }
}

/// The WebSocket TLS connector: `None` (tungstenite's own, the platform's
/// roots) without `--ca-cert`, else the platform verifier with the
/// `--ca-cert` certificates added.
pub fn ws_connector() -> anyhow::Result<Option<tokio_tungstenite::Connector>> {
    if extra_roots().is_empty() {
        return Ok(None);
    }
    let config = tls_config(&[b"http/1.1"])?;
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

/// A client configuration verifying with [`PinnedOrPlatform`].
fn tls_config(alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
    let roots = extra_roots();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let platform =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots.to_vec(), provider.clone())?;
    let verifier = PinnedOrPlatform {
        platform,
        pinned: roots.to_vec(),
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The platform's verification with the `--ca-cert` CAs added; and a server
/// whose certificate *is* one of the `--ca-cert` certificates, byte for
/// byte, is trusted as well.
///
/// The common self-signed one-liner (`openssl req -x509 ...`) marks its
/// certificate as a CA, and WebPKI refuses a CA certificate used by a
/// server (`CaUsedAsEndEntity`), so `--ca-cert cert.pem` with that very
/// certificate failed. Trusting exactly the certificate the user handed us
/// is certificate pinning: no other certificate gains anything from it.
/// The handshake's signature is still verified against it.
#[derive(Debug)]
struct PinnedOrPlatform {
    platform: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|pin| pin.as_ref() == end_entity.as_ref()) =>
            {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            Err(err) => Err(err),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbage_files_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_ca(&dir.path().join("nope.pem")).unwrap_err();
        assert_eq!(missing.code, crate::exit::ExitCode::Usage);
        assert!(missing.message.contains("cannot read --ca-cert"));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let err = load_ca(&garbage).unwrap_err();
        assert_eq!(err.code, crate::exit::ExitCode::Usage);
        assert!(
            err.message.contains("no PEM certificate"),
            "{}",
            err.message
        );
    }
}
