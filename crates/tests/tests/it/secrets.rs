//! Secrets (database and Redis passwords, webhook secrets) never appear in
//! `--help`, in logs, or in errors — checked on the real binaries.

use std::process::Command;

use hookline_tests::process::{binary, free_port};

const PASSWORD: &str = "hunter2-do-not-print";
const SECRET: &str = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVk";
const SECRET_BYTES: &str = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVk";

/// Runs `name args` with secrets in its environment; returns stdout + stderr.
fn run(name: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = Command::new(binary(name));
    command
        .args(args)
        .env_clear()
        .env("WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "debug");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_clean(output: &str) {
    for secret in [PASSWORD, SECRET, SECRET_BYTES] {
        assert!(!output.contains(secret), "a secret leaked:\n{output}");
    }
}

#[test]
fn help_output_never_shows_secrets_from_the_environment() {
    let database = format!("postgres://hookline:{PASSWORD}@127.0.0.1:1/hookline");
    let redis = format!("redis://:{PASSWORD}@127.0.0.1:1");
    let consumer = run("consumer", &["--help"], &[("DATABASE_URL", database)]);
    assert!(
        consumer.contains("DATABASE_URL") && consumer.contains("WEBHOOK_SECRET"),
        "{consumer}"
    );
    assert_clean(&consumer);
    let helpdesk = run("helpdesk", &["--help"], &[("REDIS_URL", redis)]);
    assert!(helpdesk.contains("REDIS_URL"), "{helpdesk}");
    assert_clean(&helpdesk);
}

#[test]
fn failing_to_start_never_logs_the_passwords_in_the_urls() {
    let database = format!("postgres://hookline:{PASSWORD}@127.0.0.1:{}/hookline", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let consumer = run(
        "consumer",
        &[],
        &[("DATABASE_URL", database), ("CONSUMER_LISTEN", listen.clone())],
    );
    assert!(consumer.contains("cannot start"), "{consumer}");
    assert_clean(&consumer);

    let redis = format!("redis://:{PASSWORD}@127.0.0.1:{}", free_port());
    let helpdesk = run("helpdesk", &[], &[("REDIS_URL", redis), ("HELPDESK_LISTEN", listen)]);
    assert!(helpdesk.contains("cannot start"), "{helpdesk}");
    assert_clean(&helpdesk);
}

#[test]
fn a_malformed_secret_is_reported_without_echoing_it() {
    let bad = "whsec_not*base64*hunter2-do-not-print";
    let database = ("DATABASE_URL", "postgres://127.0.0.1:1/x".to_owned());
    for (name, env) in [("consumer", vec![database]), ("helpdesk", Vec::new())] {
        let output = run(name, &["--webhook-secret", bad], &env);
        assert!(output.contains("base64"), "{output}");
        assert!(
            !output.contains("hunter2-do-not-print"),
            "{name} echoed the bad secret:\n{output}"
        );
    }
}
