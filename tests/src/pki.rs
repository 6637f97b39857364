//! A throw-away certificate authority for TLS tests, made at run time with
//! rcgen: a CA certificate and server certificates for `127.0.0.1` and
//! `localhost`, written as PEM files into a temp dir.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

/// A test CA with its files in a temp dir of its own.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    dir: TempDir,
    /// The CA certificate (PEM), what clients pass as `--ca-cert`.
    pub ca_cert: PathBuf,
}

/// A server certificate issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The leaf certificate in DER, to compare with what a server presents.
    pub der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).context("signing the CA")?;
        let dir = tempfile::tempdir().context("creating the CA's dir")?;
        let ca_cert = dir.path().join("ca.pem");
        std::fs::write(&ca_cert, cert.pem())?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            dir,
            ca_cert,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `127.0.0.1` and `localhost` with `serial`.
    pub fn server_cert(&self, serial: u64) -> anyhow::Result<ServerCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("lobster e2e relay {serial}"));
        params.serial_number = Some(serial.into());
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `cert` as `{name}.crt` / `{name}.key` in the CA's dir.
    pub fn write(&self, name: &str, cert: &ServerCert) -> anyhow::Result<(PathBuf, PathBuf)> {
        let crt = self.dir().join(format!("{name}.crt"));
        let key = self.dir().join(format!("{name}.key"));
        std::fs::write(&crt, &cert.cert_pem)?;
        std::fs::write(&key, &cert.key_pem)?;
        Ok((crt, key))
    }
}

/// A self-signed certificate for `127.0.0.1` and `localhost` that is also
/// marked as a CA, as `openssl req -x509 -newkey ... -subj /CN=localhost`
/// makes one: written as `{name}.crt` / `{name}.key` into `dir`.
pub fn self_signed_like_openssl(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key)?;
    let crt = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&crt, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((crt, key_path))
}

/// The DER of the leaf certificate `127.0.0.1:port` presents, verified
/// against `ca_cert`.
pub async fn served_cert(port: u16, ca_cert: &Path) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_cert)? {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = connector
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .context("the server presented no certificate")?;
    Ok(leaf.to_vec())
}
