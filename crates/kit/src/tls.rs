//! TLS for the services' outgoing calls (the help desk's webhooks, the
//! consumer's calls to the help desk): one rustls [`ClientConfig`] per
//! process, built at start-up by [`client_config`] and handed to awc.
//!
//! **Crypto provider: ring, installed explicitly.** rustls 0.23 defaults to
//! aws-lc-rs, whose build wants cmake (and nasm on some targets) besides a C
//! compiler; ring builds with a C compiler alone, so the workspace builds in
//! `rust:1-bookworm` and its stand-in unchanged. Every rustls-using
//! dependency has its default features off so aws-lc-rs is never compiled
//! (`cargo tree -i aws-lc-rs` finds nothing), and the config is built with
//! [`ClientConfig::builder_with_provider`] rather than relying on a
//! process-wide default provider, which rustls would have to guess (and
//! panics without) when no feature or call picked one.
//!
//! **Whom it trusts:** the operating system's roots (`/etc/ssl/certs`, the
//! `ca-certificates` package in the images), plus the certificates of an
//! optional PEM file (a private CA). A client certificate and key, when
//! given, are presented to servers that ask for one (mutual TLS).
//! Hostnames are verified against the URL's host, which is also the SNI.
//!
//! **Protocols:** TLS 1.2 and 1.3; ALPN offers `http/1.1` only. awc would
//! speak HTTP/2 if a server picked `h2`, but the clients here are built
//! around HTTP/1.1 connection reuse, and awc sets no ALPN itself when given
//! a config of ours.
//!
//! A file that cannot be read or holds no usable PEM is a
//! [`TlsConfigError`] at start-up, naming the setting and the path; a
//! failed handshake later is a [`TlsFailure`] (see [`failure_in`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file given by a setting (`CALLBACK_CA_FILE`, ...): errors name both.
#[derive(Debug, Clone, Copy)]
pub struct PemFile<'a> {
    pub setting: &'static str,
    pub path: &'a Path,
}

/// A client certificate chain and its private key, for mutual TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub certificate: PemFile<'a>,
    pub key: PemFile<'a>,
}

/// Why the TLS settings cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{setting}: cannot read {path}")]
    Unreadable {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{setting}: {path} holds no {what} in PEM form")]
    Empty {
        setting: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{setting}: a certificate in {path} is not a usable CA certificate")]
    BadCa {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{certificate} and {key} must be given together (mutual TLS needs both)")]
    HalfIdentity {
        certificate: &'static str,
        key: &'static str,
    },
    #[error("{certificate} and {key} do not make a client identity")]
    BadIdentity {
        certificate: &'static str,
        key: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("rustls refused the protocol versions")]
    Protocols(#[source] rustls::Error),
}

/// The client identity from two optional settings, which must come together.
pub fn client_identity<'a>(
    certificate: Option<PemFile<'a>>,
    key: Option<PemFile<'a>>,
    names: (&'static str, &'static str),
) -> Result<Option<ClientIdentity<'a>>, TlsConfigError> {
    match (certificate, key) {
        (Some(certificate), Some(key)) => Ok(Some(ClientIdentity { certificate, key })),
        (None, None) => Ok(None),
        _ => Err(TlsConfigError::HalfIdentity {
            certificate: names.0,
            key: names.1,
        }),
    }
}

/// The TLS configuration of an outgoing HTTP client: the system's roots and
/// those of `extra_ca`, ring as the provider, `http/1.1` by ALPN, and
/// `identity` presented when a server asks for a client certificate.
pub fn client_config(
    extra_ca: Option<PemFile<'_>>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = system_roots();
    if let Some(file) = extra_ca {
        for certificate in certificates(file, "certificate")? {
            roots.add(certificate).map_err(|source| TlsConfigError::BadCa {
                setting: file.setting,
                path: file.path.to_owned(),
                source,
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!("no trusted root certificates: every https:// call will fail its certificate check");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Protocols)?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(ClientIdentity { certificate, key }) => {
            let chain = certificates(certificate, "certificate")?;
            let private_key = PrivateKeyDer::from_pem_file(key.path).map_err(|source| match source {
                pem::Error::NoItemsFound => TlsConfigError::Empty {
                    setting: key.setting,
                    path: key.path.to_owned(),
                    what: "private key",
                },
                source => TlsConfigError::Unreadable {
                    setting: key.setting,
                    path: key.path.to_owned(),
                    source,
                },
            })?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|source| TlsConfigError::BadIdentity {
                    certificate: certificate.setting,
                    key: key.setting,
                    source,
                })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; none is an error.
fn certificates(file: PemFile<'_>, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let unreadable = |source| TlsConfigError::Unreadable {
        setting: file.setting,
        path: file.path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(file.path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certificates.is_empty() {
        return Err(TlsConfigError::Empty {
            setting: file.setting,
            path: file.path.to_owned(),
            what,
        });
    }
    Ok(certificates)
}

/// The operating system's trusted roots. A certificate the system lists but
/// rustls cannot use is skipped with a warning, never a reason not to start.
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(added, ignored, "some system root certificates are unusable");
    }
    roots
}

/// A failed TLS handshake, in words for an attempt log or an error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate did not verify: unknown issuer, expired,
    /// issued for another name...
    NotTrusted(String),
    /// Anything else: an alert from the server (it wanted a client
    /// certificate, or knew no common protocol), a protocol error.
    Handshake(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTrusted(detail) => write!(f, "certificate not trusted: {detail}"),
            Self::Handshake(detail) => write!(f, "TLS handshake failed: {detail}"),
        }
    }
}

/// The TLS failure behind an I/O error, if it is one: rustls's errors reach
/// awc's callers as `io::Error`s that wrap a `rustls::Error`.
pub fn failure_in(error: &io::Error) -> Option<TlsFailure> {
    let rustls_error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            TlsFailure::NotTrusted("issued by a certificate authority that is not trusted (UnknownIssuer)".to_owned())
        }
        rustls::Error::InvalidCertificate(detail) => TlsFailure::NotTrusted(detail.to_string()),
        other => TlsFailure::Handshake(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path) -> PemFile<'_> {
        PemFile {
            setting: "TEST_CA_FILE",
            path,
        }
    }

    #[test]
    fn without_files_the_config_trusts_the_system_and_offers_http_1_1() {
        let config = client_config(None, None).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(!config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn unreadable_and_empty_files_are_errors_that_name_the_setting_and_the_path() {
        let missing = Path::new("/nonexistent/ca.pem");
        let error = client_config(Some(file(missing)), None).unwrap_err();
        assert_eq!(error.to_string(), "TEST_CA_FILE: cannot read /nonexistent/ca.pem");

        let dir = std::env::temp_dir().join(format!("hookline-kit-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not-pem.txt");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let error = client_config(Some(file(&not_pem)), None).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("not-pem.txt holds no certificate in PEM form"),
            "{error}"
        );
        let garbled = dir.join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = client_config(Some(file(&garbled)), None).unwrap_err();
        assert!(matches!(error, TlsConfigError::Unreadable { .. }), "{error:?}");
        let bad_der = dir.join("bad-der.pem");
        std::fs::write(
            &bad_der,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = client_config(Some(file(&bad_der)), None).unwrap_err();
        assert!(matches!(error, TlsConfigError::BadCa { .. }), "{error:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let path = Path::new("/x.pem");
        let half = client_identity(Some(file(path)), None, ("CERT", "KEY")).unwrap_err();
        assert_eq!(
            half.to_string(),
            "CERT and KEY must be given together (mutual TLS needs both)"
        );
        assert!(client_identity(None, Some(file(path)), ("CERT", "KEY")).is_err());
        assert!(client_identity(None, None, ("CERT", "KEY")).unwrap().is_none());
    }

    #[test]
    fn rustls_errors_inside_io_errors_are_told_apart() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(
            failure_in(&wrap(rustls::CertificateError::Expired.into()))
                .unwrap()
                .to_string(),
            "certificate not trusted: Expired"
        );
        assert!(
            failure_in(&wrap(rustls::CertificateError::UnknownIssuer.into()))
                .unwrap()
                .to_string()
                .starts_with("certificate not trusted: issued by a certificate authority that is not trusted")
        );
        assert_eq!(
            failure_in(&wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            ))),
            Some(TlsFailure::Handshake(
                "received fatal alert: CertificateRequired".to_owned()
            ))
        );
        assert_eq!(failure_in(&io::Error::from(io::ErrorKind::ConnectionRefused)), None);
    }
}
