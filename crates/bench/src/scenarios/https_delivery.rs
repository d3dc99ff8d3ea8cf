//! Scenario 8, HTTPS delivery: what TLS costs a delivery. The zero-delay help desk delivers
//! the same batch to five receivers in turn: plain HTTP and HTTPS keeping
//! their connections alive (a handshake per connection, then reused), and
//! closing each connection after one answer (a connection, and a handshake,
//! per delivery), over HTTPS once with session resumption and once with a
//! full handshake every time. The differences between them, in the help
//! desk's CPU time and in latency, are the cost of TLS.
//!
//! The receivers present the certificate `bench make-tls` wrote into
//! `--tls-dir`, whose CA the fast help desk trusts (`CALLBACK_CA_FILE`).

use hookline_testkit::tls::{Issued, server_config, without_resumption};
use hookline_testkit::{Receiver, Serving};
use serde_json::{Value, json};

use super::Ctx;
use super::delivery::deliver_batch_to;
use super::report::{Report, Target, ms};
use crate::BoxError;
use crate::cpu;

pub(super) async fn https_delivery(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let (Some(fast), Some(dir)) = (ctx.args.fast_helpdesk_url.clone(), ctx.args.tls_dir.clone()) else {
        eprintln!("8 https delivery: skipped (needs --fast-helpdesk-url and --tls-dir)");
        return Ok(());
    };
    let pid = ctx
        .args
        .pids
        .iter()
        .find_map(|spec| spec.strip_prefix("helpdesk-fast="))
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    let s = "8 https delivery";
    let n = ctx.sizes.tls;
    // (name, TLS: (resumption, host), keep-alive)
    let variants = [
        ("http, kept alive", None, true),
        ("https, kept alive", Some((true, "localhost")), true),
        ("http, new connection each", None, false),
        ("https, new connection each, resumed", Some((true, "localhost")), false),
        // Another host name, so the help desk holds no session for it.
        (
            "https, new connection each, full handshake",
            Some((false, "127.0.0.1")),
            false,
        ),
    ];
    let mut cpu_us = Vec::new();
    let mut p50_ms = Vec::new();
    let mut detail = serde_json::Map::new();
    for (name, tls, keep_alive) in variants {
        let mut serving = Serving::default();
        if let Some((resumption, host)) = tls {
            let mut config = server_config(Issued::load_server(&dir)?, None)?;
            if !resumption {
                without_resumption(&mut config);
            }
            serving = serving.tls(config, host);
        }
        if !keep_alive {
            serving = serving.closing_connections();
        }
        let mut receiver = Receiver::start_in_thread(serving, 204)?;
        let before = pid.and_then(cpu::ticks);
        let done = deliver_batch_to(&ctx.run, &ctx.args, &fast, &mut receiver, n, &format!("8 {name}")).await?;
        let after = pid.and_then(cpu::ticks);
        let cpu = before
            .zip(after)
            .map(|(before, after)| (after - before) as f64 * cpu::TICK_US / done.delivered.max(1) as f64);
        report.row(s, &format!("{name}: deliveries/s"), done.per_second, "/s", Target::None);
        let p50 = ms(done.latency.value_at_quantile(0.5));
        report.row(s, &format!("{name}: request→receipt p50"), p50, "ms", Target::None);
        if let Some(cpu) = cpu {
            report.row(
                s,
                &format!("{name}: help desk CPU per delivery"),
                cpu,
                "µs",
                Target::None,
            );
        }
        report.row(
            s,
            &format!("{name}: not delivered"),
            done.not_delivered(),
            "",
            Target::AtMost(0.0),
        );
        let mut json = done.json();
        if let Value::Object(map) = &mut json {
            map.insert("helpdesk_cpu_us_per_delivery".into(), json!(cpu));
        }
        detail.insert(name.to_owned(), json);
        cpu_us.push(cpu);
        p50_ms.push(p50);
    }
    // What TLS adds: HTTPS minus HTTP with the same connection handling.
    for (what, https, http) in [
        ("TLS, connections kept alive", 1, 0),
        ("TLS with a resumed handshake per delivery", 3, 2),
        ("TLS with a full handshake per delivery", 4, 2),
    ] {
        if let (Some(https_cpu), Some(http_cpu)) = (cpu_us[https], cpu_us[http]) {
            report.row(
                s,
                &format!("{what}: help desk CPU added per delivery"),
                https_cpu - http_cpu,
                "µs",
                Target::None,
            );
        }
        report.row(
            s,
            &format!("{what}: p50 latency added"),
            p50_ms[https] - p50_ms[http],
            "ms",
            Target::None,
        );
    }
    report.details.insert("https_delivery".into(), Value::Object(detail));
    Ok(())
}
