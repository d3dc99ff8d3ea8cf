//! Certificates made on the spot (rcgen), so no test, benchmark or demo
//! depends on a certificate checked in or bought: a [`TestCa`] issues
//! server and client certificates and writes the PEM files that the
//! services' settings name (`CALLBACK_CA_FILE`, `CALLBACK_CLIENT_CERT`, ...);
//! [`server_config`] turns one into what a TLS server presents.
//!
//! Keys and certificates use ring, as the services do (see
//! `crates/kit/src/tls.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

/// The names every server certificate of a test is issued for: its servers
/// are reached as `localhost` (a name to verify) or `127.0.0.1`.
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// The file stem of [`TestCa::server_certificate`]'s files.
const SERVER: &str = "server";

/// Why a certificate or a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot make the certificate")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write or read the PEM files")]
    Files(#[from] std::io::Error),
    #[error("cannot read a PEM file")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("cannot set up TLS")]
    Tls(#[from] rustls::Error),
    #[error("cannot set up client certificate checks")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

/// A certificate authority of one's own, its certificate as `ca.pem` in a
/// directory: a temporary one that goes when the CA does ([`TestCa::new`]),
/// or one that stays ([`TestCa::in_dir`]).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    temporary: bool,
    /// The CA certificate, PEM (for `CALLBACK_CA_FILE`, `HELPDESK_CA_FILE`).
    pub ca_file: PathBuf,
}

/// A certificate issued by a [`TestCa`], with its key, in memory and as PEM files.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    /// A CA called `name` in a temporary directory, removed when it drops.
    pub fn new(name: &str) -> Result<Self, CertError> {
        let dir = std::env::temp_dir().join(format!("hookline-tls_{}", uuid::Uuid::new_v4().simple()));
        Self::create(name, dir, true)
    }

    /// A CA called `name` whose files go into `dir` and stay there (for
    /// processes started later, which read them).
    pub fn in_dir(name: &str, dir: &Path) -> Result<Self, CertError> {
        Self::create(name, dir.to_owned(), false)
    }

    fn create(name: &str, dir: PathBuf, temporary: bool) -> Result<Self, CertError> {
        std::fs::create_dir_all(&dir)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem())?;
        Ok(Self {
            issuer,
            dir,
            temporary,
            ca_file,
        })
    }

    /// A server certificate for `names` (DNS names or IP addresses), as
    /// `server.pem` and `server.key` ([`Issued::load_server`] reads them).
    pub fn server_certificate(&self, names: &[&str]) -> Result<Issued, CertError> {
        self.issue(SERVER, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate, for mutual TLS, as `<name>.pem` and `<name>.key`.
    pub fn client_certificate(&self, name: &str) -> Result<Issued, CertError> {
        self.issue(name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file_stem: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Result<Issued, CertError> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, file_stem);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        let cert_file = self.dir.join(format!("{file_stem}.pem"));
        let key_file = self.dir.join(format!("{file_stem}.key"));
        std::fs::write(&cert_file, certificate.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok(Issued {
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_file,
            key_file,
        })
    }

    /// This CA alone as a root store.
    pub fn roots(&self) -> Result<RootCertStore, CertError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone())?;
        Ok(roots)
    }

    /// A server configuration with a certificate from this CA for
    /// [`SERVER_NAMES`]; with `clients_from`, only clients holding a
    /// certificate from that CA get through (mutual TLS).
    pub fn server_config(&self, clients_from: Option<&TestCa>) -> Result<ServerConfig, CertError> {
        server_config(self.server_certificate(SERVER_NAMES)?, clients_from)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Issued {
    /// The server certificate that [`TestCa::server_certificate`] wrote into
    /// `dir`, read back (by another process than the one that made it).
    pub fn load_server(dir: &Path) -> Result<Self, CertError> {
        let cert_file = dir.join(format!("{SERVER}.pem"));
        let key_file = dir.join(format!("{SERVER}.key"));
        Ok(Self {
            chain: CertificateDer::pem_file_iter(&cert_file)?.collect::<Result<_, _>>()?,
            key: PrivateKeyDer::from_pem_file(&key_file)?,
            cert_file,
            key_file,
        })
    }
}

/// A server configuration presenting `issued` (ring, as the services use);
/// with `clients_from`, demanding a client certificate from that CA.
pub fn server_config(issued: Issued, clients_from: Option<&TestCa>) -> Result<ServerConfig, CertError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match clients_from {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()?), provider).build()?,
        ),
    };
    Ok(builder.with_single_cert(issued.chain, issued.key)?)
}

/// Makes `config` keep no sessions and issue no tickets, so every new
/// connection costs a full handshake (what the bench's HTTPS scenario
/// compares a resumed one with).
pub fn without_resumption(config: &mut ServerConfig) {
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}
