//! Certificates made on the spot and TLS in front of test servers: the test
//! kit's [`TestCa`](hookline_testkit::TestCa), made and used the way a test
//! wants (what cannot be made fails the test), and [`TlsProxy`], which
//! terminates TLS in front of a plain HTTP service, as a load balancer would.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use hookline_testkit::tls::{Issued, SERVER_NAMES};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority of a test's own, in a temporary directory that
/// goes when it does; the kit's, reached through it.
pub struct TestCa(hookline_testkit::TestCa);

impl TestCa {
    pub fn new(name: &str) -> Self {
        Self(hookline_testkit::TestCa::new(name).unwrap())
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_certificate(&self, names: &[&str]) -> Issued {
        self.0.server_certificate(names).unwrap()
    }

    /// A client certificate, for mutual TLS.
    pub fn client_certificate(&self, name: &str) -> Issued {
        self.0.client_certificate(name).unwrap()
    }

    /// A server configuration with a certificate from this CA for
    /// [`SERVER_NAMES`]; with `clients_from`, only clients holding a
    /// certificate from that CA get through (mutual TLS).
    pub fn server_config(&self, clients_from: Option<&TestCa>) -> ServerConfig {
        self.0.server_config(clients_from.map(|ca| &ca.0)).unwrap()
    }
}

impl Deref for TestCa {
    type Target = hookline_testkit::TestCa;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A server configuration presenting `issued`; with `clients_from`,
/// demanding a client certificate from that CA.
pub fn server_config(issued: Issued, clients_from: Option<&TestCa>) -> ServerConfig {
    hookline_testkit::tls::server_config(issued, clients_from.map(|ca| &ca.0)).unwrap()
}

/// Terminates TLS in front of a plain HTTP server, as a load balancer does:
/// each connection is decrypted and copied to the upstream and back.
pub struct TlsProxy {
    /// `https://localhost:<port>`.
    pub url: String,
    handshakes: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// In front of `upstream` (`host:port`), presenting `config`'s certificate.
    pub async fn start(upstream: String, config: ServerConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (handshakes_task, failed_task) = (handshakes.clone(), failed.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                let (handshakes, failed) = (handshakes_task.clone(), failed_task.clone());
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    handshakes.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            url: format!("https://localhost:{port}"),
            handshakes,
            failed,
            task,
        }
    }

    /// TLS handshakes that succeeded so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed so far (the client did not trust us, ...).
    pub fn failed_handshakes(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
