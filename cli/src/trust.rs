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

/// A reqwest builder trusting the platform store and the `--ca-cert` CA.
pub fn http_client() -> reqwest::ClientBuilder {
    let certs = extra_roots()
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok());
    reqwest::Client::builder().tls_certs_merge(certs)
}

/// The WebSocket TLS connector: `None` (tungstenite's own, the platform's
/// roots) without `--ca-cert`, else the platform verifier with the CA added.
pub fn ws_connector() -> anyhow::Result<Option<tokio_tungstenite::Connector>> {
    let roots = extra_roots();
    if roots.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots.to_vec(), provider.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
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
