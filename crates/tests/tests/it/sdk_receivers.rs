//! `hookline check --dialect` against receivers written with each
//! provider's own verification library (`crates/tests/receivers/`: Stripe's
//! SDK, Slack's SDK, the `standardwebhooks` package; GitHub's and
//! Shopify's documented snippets), not against our own verifier: each
//! correct receiver passes every case that applies, and each naive variant
//! of it fails, naming the cases it gets wrong: one that verifies nothing,
//! one that skips the library's timestamp check, one that verifies the body
//! parsed and serialised again instead of the raw bytes.
//!
//! The libraries come from PyPI into a virtualenv under the test target
//! directory (pinned in `receivers/requirements.txt`; made once per target
//! directory). Without python3's venv or PyPI the test says so and passes,
//! unless `REQUIRE_SDK_RECEIVERS` is set (`.ci/run` sets it).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hookline_cli::check::{self, Case, Report, Signer, Target};
use hookline_contract::dialect::Dialect;

const RECEIVERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/receivers");

/// The virtualenv's python with the providers' libraries, or why there is none.
fn python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if ready.exists() {
        return Ok(python);
    }
    let run = |command: &mut Command| -> Result<(), String> {
        let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr)))
        }
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(format!("{RECEIVERS}/requirements.txt")))?;
    std::fs::write(&ready, b"").map_err(|e| e.to_string())?;
    Ok(python)
}

/// One receiver process, killed when dropped.
struct SdkReceiver {
    child: Child,
    url: String,
}

impl SdkReceiver {
    /// `naive`: `nothing`, `no-timestamp` or `reserialised` (see the script).
    fn start(python: &Path, dialect: Dialect, secret: &str, naive: Option<&str>) -> Self {
        let mut command = Command::new(python);
        command
            .arg(format!("{RECEIVERS}/sdk_receiver.py"))
            .arg(dialect.name())
            .arg(secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(kind) = naive {
            command.arg("--naive").arg(kind);
        }
        let mut child = command.spawn().unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port: u16 = port
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{dialect}: no port, got {port:?}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/webhooks"),
        }
    }
}

impl Drop for SdkReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn check_in(dialect: Dialect, secret: &str, url: &str) -> Report {
    let target = Target {
        url: url.to_owned(),
        signer: Signer::new(dialect, secret).unwrap(),
        timeout: Duration::from_secs(5),
        payload: None,
    };
    check::run(&target, |_, _| {}).await.unwrap()
}

#[actix_web::test]
async fn each_provider_s_own_library_passes_check_in_its_dialect_and_a_naive_receiver_fails() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            assert!(
                std::env::var_os("REQUIRE_SDK_RECEIVERS").is_none(),
                "REQUIRE_SDK_RECEIVERS is set but the providers' libraries could not be installed: {why}"
            );
            eprintln!("SKIPPED: the SDK receivers need python3 with venv and PyPI: {why}");
            return;
        }
    };
    for dialect in Dialect::ALL {
        let secret = match dialect {
            Dialect::Standard => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Dialect::Stripe => "whsec_test_4eC39HqLyjWDarjtT1zdp7dc",
            _ => "a provider's signing secret",
        };
        let correct = SdkReceiver::start(&python, dialect, secret, None);
        let report = check_in(dialect, secret, &correct.url).await;
        assert!(
            report.passed(),
            "{dialect}, the provider's library:\n{}",
            report.table(false)
        );

        let naive = SdkReceiver::start(&python, dialect, secret, Some("nothing"));
        let report = check_in(dialect, secret, &naive.url).await;
        let failed: BTreeSet<Case> = report.failed().collect();
        for case in [
            Case::ForgedSignature,
            Case::TamperedBody,
            Case::MissingSignature,
            Case::OversizedBody,
        ] {
            assert!(
                failed.contains(&case),
                "{dialect}: {case:?} not caught:\n{}",
                report.table(false)
            );
        }
        if dialect.signs_timestamp() {
            assert!(
                failed.contains(&Case::StaleTimestamp),
                "{dialect}:\n{}",
                report.table(false)
            );
            // The signature checked, the timestamp not: exactly the
            // timestamp cases the dialect can say fail.
            let naive = SdkReceiver::start(&python, dialect, secret, Some("no-timestamp"));
            let report = check_in(dialect, secret, &naive.url).await;
            let expected: BTreeSet<Case> = [Case::StaleTimestamp, Case::FutureTimestamp]
                .into_iter()
                .filter(|case| case.applies(dialect).is_ok())
                .collect();
            assert_eq!(
                report.failed().collect::<BTreeSet<_>>(),
                expected,
                "{dialect}, no timestamp check:\n{}",
                report.table(false)
            );
        }
        // Compact JSON parsed and written again comes back byte for byte;
        // only the indented body tells this receiver apart.
        let naive = SdkReceiver::start(&python, dialect, secret, Some("reserialised"));
        let report = check_in(dialect, secret, &naive.url).await;
        assert_eq!(
            report.failed().collect::<BTreeSet<_>>(),
            BTreeSet::from([Case::ReformattedBody]),
            "{dialect}, a re-serialised body:\n{}",
            report.table(false)
        );
    }
}
