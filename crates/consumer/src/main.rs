use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the services allocate small, short-lived
/// buffers per request, and glibc's `malloc`/`free`/`malloc_consolidate` were
/// the top symbols of a `perf` profile under load; it costs some idle memory
/// (the figures: docs/BENCHMARKS.md). The `mimalloc` feature (on by default)
/// switches it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use consumer::Application;
use consumer::config::{Cli, Command};
use hookline_kit::{health, http::source_chain, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return health::check(cli.settings.listen);
    }
    telemetry::init(cli.settings.log_format);
    let app = match Application::build(cli.settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %source_chain(&e), "the consumer cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %source_chain(&e), "the consumer stopped with an error");
            ExitCode::FAILURE
        }
    }
}
