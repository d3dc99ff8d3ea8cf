//! The HTTP side of a webhook receiver, written once for the recording
//! [`Receiver`](crate::receiver::Receiver) of the tests and the bench and
//! for `hookline listen`: an actix-web server with one worker that hands
//! every request, on any path and with any method, to a handler as an
//! [`Arrival`] (the request, its body, when it came) and answers whatever
//! the handler returns. Over TLS or not, on a listener of the caller's or
//! on a free loopback port, keeping connections alive or closing each after
//! one answer, dropping a handler when its client hangs up or not
//! ([`Serving`]).
//!
//! The server is returned unstarted ([`Served`]): the caller decides where
//! it runs (a task of its own, a thread of its own) and when it stops.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::http::KeepAlive;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// The largest body a receiver reads; a larger one gets a 413.
const BODY_LIMIT: usize = 1024 * 1024;
/// Connections waiting to be accepted when the server binds its own port
/// (the bench's receivers take bursts of thousands).
const BACKLOG: u32 = 4096;

/// One request as it arrived.
pub struct Arrival {
    pub request: HttpRequest,
    pub body: web::Bytes,
    /// When the body had been read, for durations and order within a process.
    pub at: Instant,
    /// The same moment as unix microseconds, to compare with times other
    /// processes recorded (a job's due time in Redis).
    pub at_unix_us: i64,
}

impl Arrival {
    fn now(request: HttpRequest, body: web::Bytes) -> Self {
        let at_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX));
        Self {
            request,
            body,
            at: Instant::now(),
            at_unix_us,
        }
    }
}

/// Where and how a receiver serves: by default plain HTTP on a free port of
/// `127.0.0.1`, keeping connections alive.
#[derive(Default)]
pub struct Serving {
    listener: Option<TcpListener>,
    tls: Option<(rustls::ServerConfig, String)>,
    closing_connections: bool,
    dropping_on_hang_up: bool,
}

impl Serving {
    /// On `listener` (bound by the caller) instead of a free loopback port.
    pub fn on(listener: TcpListener) -> Self {
        Self {
            listener: Some(listener),
            ..Self::default()
        }
    }

    /// Over TLS with `config`, its URL naming `host` (which the certificate
    /// must be for).
    pub fn tls(mut self, config: rustls::ServerConfig, host: &str) -> Self {
        self.tls = Some((config, host.to_owned()));
        self
    }

    /// Closing every connection after one answer, so each request costs a
    /// new connection (and, over TLS, a handshake).
    pub fn closing_connections(mut self) -> Self {
        self.closing_connections = true;
        self
    }
}

impl Serving {
    /// Dropping the handler's future (and a streamed answer) as soon as the
    /// client closes its end, so a handler learns (from its drop) that the
    /// sender gave up. By default a closed read side is taken as a
    /// half-close and the handler runs on to answer no one.
    pub fn dropping_on_hang_up(mut self) -> Self {
        self.dropping_on_hang_up = true;
        self
    }
}

/// A server ready to run, and its base URL (`scheme://host:port`, no path).
pub struct Served {
    pub url: String,
    pub server: Server,
}

/// Prepares a server that answers every request with what `handler` makes
/// of its [`Arrival`]. Must be called inside an actix system, where the
/// server will then run.
pub fn serve<H, F>(serving: Serving, handler: H) -> std::io::Result<Served>
where
    H: Fn(Arrival) -> F + Clone + Send + 'static,
    F: Future<Output = HttpResponse> + 'static,
{
    let server = HttpServer::new(move || {
        let handler = handler.clone();
        App::new()
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let handler = handler.clone();
                async move { handler(Arrival::now(request, body)).await }
            }))
    })
    .workers(1)
    .disable_signals()
    .backlog(BACKLOG)
    .h1_allow_half_closed(!serving.dropping_on_hang_up)
    .keep_alive(if serving.closing_connections {
        KeepAlive::Disabled
    } else {
        KeepAlive::default()
    });
    let (server, url) = match (serving.listener, serving.tls) {
        (Some(listener), None) => {
            let url = format!("http://{}", listener.local_addr()?);
            (server.listen(listener)?, url)
        }
        (Some(listener), Some((config, host))) => {
            let url = format!("https://{host}:{}", listener.local_addr()?.port());
            (server.listen_rustls_0_23(listener, config)?, url)
        }
        (None, None) => {
            let server = server.bind(("127.0.0.1", 0))?;
            let port = server.addrs().first().map_or(0, |addr| addr.port());
            let url = format!("http://127.0.0.1:{port}");
            (server, url)
        }
        (None, Some((config, host))) => {
            let server = server.bind_rustls_0_23(("127.0.0.1", 0), config)?;
            let port = server.addrs().first().map_or(0, |addr| addr.port());
            let url = format!("https://{host}:{port}");
            (server, url)
        }
    };
    Ok(Served {
        url,
        server: server.run(),
    })
}
