//! Stopping well inside an orchestrator's limit.
//!
//! `docker compose stop` (and Kubernetes) send SIGTERM, wait a grace period
//! (Docker: 10 s) and then SIGKILL. actix-web stops its HTTP server on that
//! signal by itself; [`signal`] lets a service start stopping its other work
//! (the delivery worker, endless server-sent event streams) at the same
//! moment instead of after the server, so everything fits in one
//! `SHUTDOWN_GRACE`. What a stop cuts off is retried: a delivery's lease
//! expires, a client repeats its request.

use std::time::Duration;

/// Resolves when the process gets SIGTERM or SIGINT (Ctrl-C). If the signal
/// handlers cannot be installed it never resolves: actix's own handlers
/// still stop the server.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// actix-web's `shutdown_timeout` takes whole seconds: round up, so a grace
/// of 500ms is not "stop at once".
pub fn whole_seconds(grace: Duration) -> u64 {
    grace.as_secs() + u64::from(grace.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(500)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(8)), 8);
        assert_eq!(whole_seconds(Duration::from_millis(8001)), 9);
    }
}
