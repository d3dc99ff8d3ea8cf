//! The certificates of scenario 8 (HTTPS delivery): `bench make-tls DIR`
//! writes a CA and a receiver certificate for `localhost` and `127.0.0.1`
//! before the help desk starts (it trusts the CA through CALLBACK_CA_FILE),
//! and the bench's TLS receivers present that certificate.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;

use crate::BoxError;

const CA: &str = "ca.pem";
const CERT: &str = "receiver.pem";
const KEY: &str = "receiver.key";

/// Writes `ca.pem`, `receiver.pem` and `receiver.key` into `dir`.
pub(crate) fn make(dir: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "hookline bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, "bench receiver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &ca)?;
    std::fs::write(dir.join(CA), ca.pem())?;
    std::fs::write(dir.join(CERT), certificate.pem())?;
    std::fs::write(dir.join(KEY), key.serialize_pem())?;
    Ok(())
}

/// The receivers' server configuration from `dir` (as [`make`] wrote it).
/// With `resumption` false the server keeps no sessions and issues no
/// tickets, so every new connection is a full handshake.
pub(crate) fn server_config(dir: &Path, resumption: bool) -> Result<rustls::ServerConfig, BoxError> {
    let chain = CertificateDer::pem_file_iter(dir.join(CERT))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join(KEY))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    if !resumption {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}
