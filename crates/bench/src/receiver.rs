//! The fast webhook receiver of the delivery and schedule scenarios: an
//! actix-web server on 127.0.0.1:0, in its own thread, that notes when each
//! webhook arrived (unix µs) and answers 204 without checking anything.
//! Over TLS or not, keeping connections alive or closing each after one
//! answer (scenario 8 compares them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{App, HttpResponse, HttpServer, web};
use hookline_contract::DocumentWebhook;

use crate::{BoxError, unix_us};

/// One webhook as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    /// The `id` of the original request (echoed back by the help desk).
    pub(crate) id: Option<String>,
    pub(crate) document_id: String,
    pub(crate) at_us: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Receipts {
    list: Mutex<Vec<Receipt>>,
    count: AtomicUsize,
}

impl Receipts {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Everything received so far, emptying the list.
    pub(crate) fn take(&self) -> Vec<Receipt> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        self.count.store(0, Ordering::Release);
        std::mem::take(&mut *list)
    }
}

async fn hook(receipts: web::Data<Receipts>, body: web::Json<DocumentWebhook>) -> HttpResponse {
    let at_us = unix_us();
    let body = body.into_inner();
    receipts
        .list
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Receipt {
            id: body.id,
            document_id: body.document_id,
            at_us,
        });
    receipts.count.fetch_add(1, Ordering::AcqRel);
    HttpResponse::NoContent().finish()
}

/// Starts a receiver, over TLS with `tls` (then its URL's host is
/// `tls_host`); with `keep_alive` false it closes every connection after
/// one answer. Returns its callback URL and the receipts.
pub(crate) fn start(
    tls: Option<(rustls::ServerConfig, &str)>,
    keep_alive: bool,
) -> Result<(String, Arc<Receipts>), BoxError> {
    let scheme_host = match &tls {
        Some((_, host)) => format!("https://{host}"),
        None => "http://127.0.0.1".to_owned(),
    };
    let tls = tls.map(|(config, _)| config);
    let receipts = web::Data::new(Receipts::default());
    let shared = receipts.clone().into_inner();
    let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(receipts.clone())
                    .route("/hook", web::post().to(hook))
            })
            .workers(1)
            .disable_signals()
            .backlog(4096)
            .keep_alive(if keep_alive {
                actix_web::http::KeepAlive::default()
            } else {
                actix_web::http::KeepAlive::Disabled
            });
            let server = match tls {
                Some(config) => server.bind_rustls_0_23(("127.0.0.1", 0), config),
                None => server.bind(("127.0.0.1", 0)),
            };
            let server = match server {
                Ok(server) => server,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let port = server.addrs().first().map_or(0, |addr| addr.port());
            let _ = tx.send(Ok(port));
            let _ = server.run().await;
        });
    });
    let port = rx.recv()??;
    Ok((format!("{scheme_host}:{port}/hook"), shared))
}
