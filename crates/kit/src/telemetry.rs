//! `tracing` set-up: `RUST_LOG` filters (default `info`), `LOG_FORMAT`
//! chooses pretty or JSON lines.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat) {
    // Colours only for a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter()).with_ansi(ansi);
    // `try_init` only fails when a subscriber is already installed, which is fine.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // Every enclosing span, so a line logged inside a nested span
            // (the consumer's `webhook`) still carries the request's `request_id`.
            .with_span_list(true)
            .try_init(),
    };
}

/// Tests are silent unless `TEST_LOG` is set, in which case logs go through
/// the test harness's capture.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_test_writer()
                .try_init();
        }
    });
}
