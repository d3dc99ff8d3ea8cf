//! `hookline listen` started inside a test: on a free port, verifying with
//! the signer given (none: nothing), JSON lines, no delay or failures on
//! purpose, until the test says stop.

use actix_web::rt::task::JoinHandle;
use hookline_cli::check::Signer;
use hookline_cli::listen::{DelayRange, ListenSettings, Listener, Totals};
use hookline_contract::dialect::Dialect;
use tokio::sync::oneshot;

/// A running listener: its base URL, how to stop it, and its totals once stopped.
pub struct Listening {
    pub url: String,
    pub stop: oneshot::Sender<()>,
    pub totals: JoinHandle<Totals>,
}

/// Starts a listener that verifies in `dialect` with `signer`.
pub fn start_listener(signer: Option<Signer>, dialect: Dialect) -> Listening {
    let settings = ListenSettings {
        signer,
        dialect,
        fail_rate: 0.0,
        delay: DelayRange(0..=0),
        json: true,
        colour: false,
    };
    let listener = Listener::build(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), settings).unwrap();
    let url = listener.url.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let totals = actix_web::rt::spawn(async move {
        listener
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    Listening { url, stop, totals }
}
