//! What both service binaries do in `main`, written once: read the command
//! line (the settings, or `healthcheck`), set up telemetry, build the
//! application, serve until stopped, and exit non-zero with the whole cause
//! chain logged when building or serving fails. A binary's `main` is then
//! one line: `service::main::<Application>().await`.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::config::LogFormat;
use crate::http::source_chain;
use crate::{health, telemetry};

/// A service's command line: its settings (flags and environment
/// variables), or a subcommand.
#[derive(Debug, clap::Parser)]
pub struct Cli<S: clap::Args> {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: S,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Exit 0 if the service listening on the configured address answers
    /// `GET /readyz` with 200 (the container healthcheck, without curl).
    Healthcheck,
}

impl<S: clap::Args> Cli<S> {
    /// Reads the command line as the service `name` (`--help` shows `about`),
    /// or exits with clap's message.
    pub fn parse_as(name: &'static str, about: &'static str) -> Self {
        let matches = Self::command()
            .name(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"))
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Reads `args` (the binary's name first) as the service `name`: for tests.
    pub fn try_parse_as<I, T>(name: &'static str, args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().name(name).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

/// A service that [`main`] can run.
pub trait Service: Sized {
    /// Its settings, every one a flag with an environment variable.
    type Settings: clap::Args;
    /// Why it could not be built.
    type Error: std::error::Error + 'static;
    /// Its binary's name, in `--help` and in the log lines of `main`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;

    /// Where it listens (what `healthcheck` asks).
    fn listen(settings: &Self::Settings) -> SocketAddr;
    fn log_format(settings: &Self::Settings) -> LogFormat;
    /// Builds it, listening, not yet serving.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>>;
    /// Serves until a signal (or a stop) ends it.
    fn run_until_stopped(self) -> impl Future<Output = std::io::Result<()>>;
}

/// The whole `main` of a service.
pub async fn main<S: Service>() -> ExitCode {
    let cli = Cli::<S::Settings>::parse_as(S::NAME, S::ABOUT);
    if let Some(Command::Healthcheck) = cli.command {
        return health::check(S::listen(&cli.settings));
    }
    telemetry::init(S::log_format(&cli.settings));
    let service = match S::build(cli.settings).await {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(service = S::NAME, error = %source_chain(&e), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match service.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = S::NAME, error = %source_chain(&e), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
