//! `hookline`: `check` a webhook receiver, `listen` as one, `trigger` a
//! help desk's deliveries (with chaos) to one, or `replay` them; `grade` a
//! sender.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookline_cli::check::{self, Case, Payload, Signer, Target};
use hookline_cli::grade::{self, GradeSettings, Grader};
use hookline_cli::listen::{DelayRange, ListenSettings, Listener, Totals};
use hookline_cli::trigger::{self, Trigger};
use hookline_contract::chaos::{ChaosError, ChaosProfile};
use hookline_contract::dialect::Dialect;

/// A webhook test bench for anyone's receiver, and sender: Standard
/// Webhooks, or Stripe's, GitHub's, Shopify's or Slack's signatures with
/// --dialect.
#[derive(Debug, Parser)]
#[command(name = "hookline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a conformance battery to a receiver and print what it answered.
    /// Exits 0 only if every case passes.
    Check {
        /// The receiver's URL, e.g. http://localhost:8080/document/update.
        url: String,
        /// The secret the receiver verifies with: Standard Webhooks'
        /// whsec_… (comma-separated for several), or the provider's secret
        /// as it hands it out with --dialect.
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Sign as this provider does: standard (Standard Webhooks), stripe,
        /// github, shopify or slack. Cases a dialect cannot say (a stale
        /// timestamp where none is signed) are listed as not applicable.
        #[arg(long, default_value = "standard")]
        dialect: Dialect,
        /// How long to wait for each answer.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Send this JSON object as every webhook's body (an event your
        /// receiver really parses) instead of the review payload. With
        /// --event: a directory of fixtures, one TYPE.json per event type.
        #[arg(long)]
        payload: Option<std::path::PathBuf>,
        /// Send the fixture of this event type: --payload DIR's TYPE.json
        /// (e.g. invoice.paid). A type the directory lacks exits 2, listing
        /// the types it has.
        #[arg(long, requires = "payload")]
        event: Option<String>,
        /// Also write the report as JUnit XML to this file, for CI.
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Receive webhooks on a local port and print one line per request.
    Listen {
        /// The port to listen on (0: any free port).
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Verify with this secret (whsec_…, or the provider's secret with
        /// --dialect); without it nothing is verified.
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Verify as this provider's library does: standard, stripe,
        /// github, shopify or slack.
        #[arg(long, default_value = "standard")]
        dialect: Dialect,
        /// Probability (0-1) of answering a 500 on purpose.
        #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
        fail_rate: f64,
        /// Wait this many milliseconds before answering: `A-B` (random) or `A`.
        #[arg(long, default_value = "0")]
        delay: DelayRange,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Have a help desk send reviews to a URL (with a chaos profile if
    /// asked), wait for every delivery, and sum up how the receiver answered.
    /// Every run has a seed (printed first); --seed with it replays the same
    /// faults into the same cases.
    #[command(after_help = TRIGGER_EXIT_CODES)]
    Trigger {
        /// Where the webhooks go (the receiver's URL).
        #[arg(long)]
        to: String,
        /// The help desk's base URL.
        #[arg(long, env = "HELPDESK_URL", default_value = "http://127.0.0.1:8080")]
        helpdesk: String,
        /// How many reviews.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// The reviews' chaos profile: `fault=rate,...` (duplicate, replay,
        /// reorder, delay, forged_signature, stale_timestamp, malformed_body,
        /// slow_send), `all=R` for every fault at R, or `none`. Without it,
        /// the help desk's own CHAOS applies.
        #[arg(long, value_parser = parse_chaos)]
        chaos: Option<ChaosProfile>,
        /// The chance (0-1) that a review is ACCEPTED. Without it, the help
        /// desk's own ACCEPT_RATIO applies.
        #[arg(long, value_parser = parse_rate)]
        accept_ratio: Option<f64>,
        /// One of the help desk's HELPDESK_API_KEYS, if it has any.
        #[arg(long, env = "HELPDESK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// How long to wait for the deliveries.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Have the reviews signed as this provider signs: standard,
        /// stripe, github, shopify or slack (the key: the help desk's
        /// secret as the whsec_… string, except in standard).
        #[arg(long)]
        dialect: Option<Dialect>,
        /// The run's seed: case i's faults are drawn from a seed mixed from
        /// it and i, so the same seed replays the same faults. Without it,
        /// a random one (printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the summary as JUnit XML to this file, for CI: a test
        /// case per fault kind injected, "every review delivered", "books balance".
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Receive a sender's webhooks on a local port, answer each message
    /// with a script of misbehaviour (500s, 429, 410, a redirect, a hang, a
    /// slow body), and grade how the sender took it. Send it 6 messages.
    /// Exits 0 only for full marks.
    Grade {
        /// The port to listen on (0: any free port).
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// Verify every attempt with this secret (whsec_…, or the
        /// provider's secret with --dialect); without it signatures are not
        /// graded.
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// The sender signs as this provider does: standard, stripe,
        /// github, shopify or slack (its delivery id header and timestamp).
        #[arg(long, default_value = "standard")]
        dialect: Dialect,
        /// How long the hang holds and the slow body trickles (past the 30 s
        /// a sender should wait, by default).
        #[arg(long, default_value = "35s", value_parser = positive_duration)]
        hang: Duration,
        /// The Retry-After of the 429, in seconds.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
        retry_after: u64,
        /// How long to wait for every script to end.
        #[arg(long, default_value = "3m", value_parser = positive_duration)]
        wait: Duration,
        /// Also write the grade as JUnit XML to this file, for CI.
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        /// Print the grade as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Have a help desk deliver cases again, now: the same webhook-id and
    /// body, a fresh timestamp (is the receiver idempotent?).
    Replay {
        /// The cases' documentIds.
        #[arg(required = true)]
        document_ids: Vec<String>,
        /// The help desk's base URL.
        #[arg(long, env = "HELPDESK_URL", default_value = "http://127.0.0.1:8080")]
        helpdesk: String,
        /// One of the help desk's HELPDESK_API_KEYS, if it has any.
        #[arg(long, env = "HELPDESK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

const TRIGGER_EXIT_CODES: &str = "Exit codes: 0 passed (every review delivered, every fault answered as a correct receiver would, the books balance); 1 failed (the receiver's fault: a review dead or late, a fault answered wrongly); 2 usage error, or the run cannot start (no review created); 3 void (the books do not balance: a case lost or counted twice, a review not created; the run says nothing about the receiver).";

/// A probability argument that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a probability between 0 and 1")]
struct NotAProbability(String);

/// Why a `--chaos` argument is not a profile.
#[derive(Debug, thiserror::Error)]
enum BadChaos {
    #[error(transparent)]
    Rate(#[from] NotAProbability),
    #[error(transparent)]
    Profile(#[from] ChaosError),
}

/// A chaos profile, or `all=R`: every fault at rate R.
fn parse_chaos(s: &str) -> Result<ChaosProfile, BadChaos> {
    match s.trim().strip_prefix("all=") {
        Some(rate) => Ok(parse_rate(rate).map(ChaosProfile::every_fault)?),
        None => Ok(s.parse()?),
    }
}

/// A duration argument that is zero or not one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a duration above zero (e.g. 35s, 3m)")]
struct NotAPositiveDuration(String);

fn positive_duration(s: &str) -> Result<Duration, NotAPositiveDuration> {
    match humantime::parse_duration(s) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(NotAPositiveDuration(s.to_owned())),
    }
}

fn parse_rate(s: &str) -> Result<f64, NotAProbability> {
    match s.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(NotAProbability(s.to_owned())),
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors.
    let cli = Cli::parse();
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Check {
                url,
                secret,
                dialect,
                timeout,
                payload,
                event,
                junit,
                json,
            } => {
                let signer = Signer::new(dialect, &secret)?;
                let payload = match (payload, event) {
                    (Some(dir), Some(event)) => Some(Payload::fixture(&dir, &event)?),
                    (Some(path), None) => Some(Payload::read(&path)?),
                    (None, _) => None,
                };
                let target = Target {
                    url,
                    signer,
                    timeout,
                    payload,
                };
                check(target, json, junit.as_deref()).await
            }
            Command::Listen {
                port,
                secret,
                dialect,
                fail_rate,
                delay,
                json,
            } => {
                let signer = secret.map(|secret| Signer::new(dialect, &secret)).transpose()?;
                let settings = ListenSettings {
                    signer,
                    dialect,
                    fail_rate,
                    delay,
                    json,
                    colour: std::io::stdout().is_terminal(),
                };
                listen(port, settings).await
            }
            Command::Trigger {
                to,
                helpdesk,
                count,
                chaos,
                accept_ratio,
                api_key,
                wait,
                dialect,
                seed,
                junit,
                json,
            } => {
                let settings = Trigger {
                    helpdesk,
                    to,
                    count,
                    chaos,
                    accept_ratio,
                    api_key,
                    wait,
                    dialect,
                    seed,
                };
                run_trigger(&settings, json, junit.as_deref()).await
            }
            Command::Grade {
                port,
                secret,
                dialect,
                hang,
                retry_after,
                wait,
                junit,
                json,
            } => {
                let settings = GradeSettings {
                    signer: secret.map(|secret| Signer::new(dialect, &secret)).transpose()?,
                    dialect,
                    hang,
                    retry_after: Duration::from_secs(retry_after),
                    wait,
                    quiet: grade::QUIET,
                };
                run_grade(port, settings, json, junit.as_deref()).await
            }
            Command::Replay {
                document_ids,
                helpdesk,
                api_key,
                json,
            } => {
                let replayed = trigger::replay(&helpdesk, api_key.as_deref(), &document_ids).await?;
                let text = |_colour: bool| {
                    replayed
                        .iter()
                        .map(|r| {
                            let status = r.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
                            format!("{}  {status}  {}\n", r.document_id, r.detail)
                        })
                        .collect::<String>()
                };
                outcome(json, &replayed, text, replayed.iter().all(trigger::Replayed::scheduled))
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            let mut message = format!("hookline: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

type Failure = Box<dyn std::error::Error>;

/// A progress line on stderr, rewritten in place; on a terminal only.
struct Progress(bool);

impl Progress {
    fn new() -> Self {
        Self(std::io::stderr().is_terminal())
    }

    fn show(&self, text: &str) {
        if self.0 {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        }
    }

    fn clear(&self) {
        self.show("");
    }
}

/// Prints a finished run as JSON or as text (coloured on a terminal); exit
/// code 0 only if it passed.
fn outcome(
    json: bool,
    report: &impl serde::Serialize,
    text: impl FnOnce(bool) -> String,
    passed: bool,
) -> Result<ExitCode, Failure> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", text(std::io::stdout().is_terminal()));
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn check(target: Target, json: bool, junit: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    let progress = Progress::new();
    let report = check::run(&target, |index, case: Case| {
        progress.show(&format!("[{}/{}] {}", index + 1, Case::ALL.len(), case.name()));
    })
    .await?;
    progress.clear();
    if let Some(path) = junit {
        std::fs::write(path, report.junit()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    outcome(json, &report, |colour| report.table(colour), report.passed())
}

/// Exit 0 passed, 1 failed, 3 void (see `TRIGGER_EXIT_CODES`).
async fn run_trigger(settings: &Trigger, json: bool, junit: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    let progress = Progress::new();
    let summary = trigger::run(settings, |stage, done, of| {
        progress.show(&format!("{stage} {done}/{of}"));
    })
    .await?;
    progress.clear();
    if let Some(path) = junit {
        std::fs::write(path, summary.junit()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let code = outcome(json, &summary, |colour| summary.text(colour), summary.passed())?;
    Ok(match summary.verdict {
        trigger::Verdict::Void => ExitCode::from(3),
        _ => code,
    })
}

async fn run_grade(
    port: u16,
    settings: GradeSettings,
    json: bool,
    junit: Option<&std::path::Path>,
) -> Result<ExitCode, Failure> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let grader = Grader::build(listener, settings)?;
    if json {
        println!("{}", serde_json::json!({"grading": grader.url}));
    } else {
        println!("grading whoever sends to {} (send it 6 messages)", grader.url);
    }
    let report = grader.run().await;
    if let Some(path) = junit {
        std::fs::write(path, report.junit()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    outcome(json, &report, |colour| report.table(colour), report.passed())
}

async fn listen(port: u16, settings: ListenSettings) -> Result<ExitCode, Failure> {
    let json = settings.json;
    let verifying = settings.signer.is_some();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let server = Listener::build(listener, settings)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"listening": server.url, "verifying": verifying})
        );
    } else {
        println!(
            "listening on {} ({}); Ctrl-C to stop",
            server.url,
            if verifying {
                "verifying signatures"
            } else {
                "not verifying: no --secret"
            }
        );
    }
    let totals: Totals = server.run_until_ctrl_c().await?;
    if json {
        println!("{}", serde_json::json!({"totals": totals}));
    } else {
        println!(
            "\nreceived {}, verified {}, refused {}, duplicates {}, replays {}, failed on purpose {}",
            totals.received,
            totals.verified,
            totals.refused,
            totals.duplicates,
            totals.replays,
            totals.failed_on_purpose
        );
    }
    Ok(ExitCode::SUCCESS)
}
