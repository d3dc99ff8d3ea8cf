//! The database's own limit for a write path, measured on the same server in
//! the same run: pgbench doing only the statements the endpoint sends, with
//! nothing else around them (no HTTP, no help desk, no pool), prepared
//! (`-M prepared`), at the bench's concurrency (`-c`, `-j 2`) and for as many
//! operations as the scenario (`-t` = operations / clients).
//!
//! Each pgbench client numbers its operations itself: `-D k=0` and `\set k
//! :k + 1` (a client's variables live on from one transaction to the next),
//! so `n = k * 1000 + client_id` never repeats within a run, and a `tag`
//! per invocation keeps runs apart. No extra statement hands out ids.
//!
//! - create-review: the INSERT of a new review (as `insert_requested`) and
//!   the UPDATE that attaches the help desk's ids (`attach_tickets`, the
//!   statement the consumer runs, with one-element arrays): two statements,
//!   two commits, as the consumer at `WRITE_BATCH=1`.
//! - create-review, batched: the same two statements over [`BATCH`] reviews
//!   each, what group commit can reach.
//! - ingestion: `decide.sql` itself, on reviews seeded for it, one decision
//!   per transaction (no duplicates).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::BoxError;
use crate::cpu::{self, TICK_US};

/// Reviews per statement of the batched create-review script.
pub(crate) const BATCH: usize = 16;

/// The consumer's decision statement, with `{name}` bind parameters.
const DECIDE: &str = include_str!("../../consumer/src/db/decide.sql");

/// The attach statement of `attach_tickets` (crates/consumer/src/db/reviews.rs),
/// its three arrays left to fill.
const ATTACH: &str = "WITH ticket AS (SELECT * FROM unnest(IDS, AGENTS, DOCUMENTS) AS t (id, agent_id, document_id)), \
     locked AS (SELECT r.id FROM document_reviews r JOIN ticket USING (id) ORDER BY r.id FOR UPDATE OF r) \
     UPDATE document_reviews r \
     SET agent_id = COALESCE(r.agent_id, ticket.agent_id), document_id = COALESCE(r.document_id, ticket.document_id) \
     FROM ticket, locked WHERE r.id = ticket.id AND locked.id = r.id \
     RETURNING r.id, r.document_url, r.agent_id, r.document_id, r.document_status, r.created_at, r.updated_at, \
               r.received_at;\n";

/// Operation `n`'s review id: time-ordered like the consumer's UUIDv7 (the
/// primary key grows at its right edge), unique per tag.
fn review_id(n: &str) -> String {
    format!("(lpad(to_hex(:tag::bigint), 8, '0') || '-0000-7000-8000-' || lpad(to_hex({n}), 12, '0'))::uuid")
}

/// Operation `n`'s document id at the help desk.
fn document_id(n: &str) -> String {
    format!("('pgbd-' || :tag::bigint || '-' || {n})")
}

const NUMBERING: &str = "\\set k :k + 1\n\\set n :k * 1000 + :client_id\n";

/// One review per transaction: INSERT, then the attach UPDATE.
pub(crate) fn create_review_script() -> String {
    let n = ":n::bigint";
    let insert = format!(
        "INSERT INTO document_reviews (id, document_url, document_status) \
         VALUES ({}, 'https://bench.example/pgbench/' || {n}, 'PENDING_REVIEW');\n",
        review_id(n)
    );
    let attach = ATTACH
        .replace("IDS", &format!("ARRAY[{}]", review_id(n)))
        .replace("AGENTS", "ARRAY['agent-pgbench']")
        .replace("DOCUMENTS", &format!("ARRAY[{}]", document_id(n)));
    format!("{NUMBERING}{insert}{attach}")
}

/// [`BATCH`] reviews per transaction: one multi-row INSERT, one attach.
pub(crate) fn create_review_batched_script() -> String {
    let n = "(:n::bigint * 1000 + g)";
    let last = BATCH - 1;
    let insert = format!(
        "INSERT INTO document_reviews (id, document_url, document_status) \
         SELECT {}, 'https://bench.example/pgbench/' || {n}, 'PENDING_REVIEW' FROM generate_series(0, {last}) g;\n",
        review_id(n)
    );
    let attach = ATTACH
        .replace(
            "IDS",
            &format!("ARRAY(SELECT {} FROM generate_series(0, {last}) g)", review_id(n)),
        )
        .replace(
            "AGENTS",
            &format!("ARRAY(SELECT 'agent-pgbench'::text FROM generate_series(0, {last}) g)"),
        )
        .replace(
            "DOCUMENTS",
            &format!("ARRAY(SELECT {} FROM generate_series(0, {last}) g)", document_id(n)),
        );
    format!("{NUMBERING}{insert}{attach}")
}

/// One decision per transaction: decide.sql as the consumer sends it for a
/// webhook without a request id, on a review seeded by [`seed_sql`].
pub(crate) fn ingestion_script() -> String {
    let n = ":n::bigint";
    let mut sql = String::new();
    let mut rest = DECIDE;
    while let Some(start) = rest.find('{') {
        sql.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + len];
        sql.push_str(&match name {
            "webhook_id" => format!("('pgbw-' || :tag::bigint || '-' || {n})"),
            "document_id" => document_id(n),
            "request_id" => "NULL::uuid".to_owned(),
            "decision" => "'ACCEPTED'".to_owned(),
            "agent_id" => "'agent-pgbench'".to_owned(),
            "pending" => "'PENDING_REVIEW'".to_owned(),
            other => format!("{{{other}}}"),
        });
        rest = &rest[start + len + 1..];
    }
    sql.push_str(rest);
    format!("{NUMBERING}{};\n", sql.trim_end())
}

/// The pending reviews [`ingestion_script`] decides: one per operation
/// `k * 1000 + client` (k = 1..=per_client) of invocation `tag`.
pub(crate) fn seed_sql(tag: u32, clients: usize, per_client: usize) -> String {
    format!(
        "INSERT INTO document_reviews (id, document_url, agent_id, document_id) \
         SELECT gen_random_uuid(), 'https://bench.example/pgbench.pdf', 'agent-pgbench', \
                'pgbd-{tag}-' || (k * 1000 + c) \
         FROM generate_series(0, {}) c, generate_series(1, {per_client}) k",
        clients.saturating_sub(1)
    )
}

/// What one pgbench invocation did.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Transactions per second (without connection time), as pgbench says.
    pub(crate) tps: f64,
    pub(crate) transactions: u64,
    pub(crate) latency_avg_ms: Option<f64>,
    pub(crate) seconds: f64,
    /// CPU pgbench itself used (µs).
    pub(crate) client_cpu_us: f64,
    pub(crate) command: String,
}

impl Outcome {
    pub(crate) fn json(&self) -> Value {
        json!({
            "tps": self.tps,
            "transactions": self.transactions,
            "latency_avg_ms": self.latency_avg_ms,
            "seconds": self.seconds,
            "pgbench_cpu_us": self.client_cpu_us,
            "command": self.command,
        })
    }
}

/// Where pgbench is and what it talks to.
pub(crate) struct Pgbench {
    pub(crate) bin: PathBuf,
    pub(crate) url: String,
    pub(crate) dir: PathBuf,
}

impl Pgbench {
    /// Runs `script` (written to `name`.sql) on `clients` connections, `per_client`
    /// transactions each, with `tag`; fails unless every transaction went through.
    pub(crate) fn run(
        &self,
        name: &str,
        script: &str,
        clients: usize,
        per_client: usize,
        tag: u32,
    ) -> Result<Outcome, BoxError> {
        std::fs::create_dir_all(&self.dir)?;
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let file = self.dir.join(format!("{slug}.sql"));
        std::fs::write(&file, script)?;
        let args: Vec<String> = vec![
            "-n".into(),
            "-M".into(),
            "prepared".into(),
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            clients.min(2).to_string(),
            "-t".into(),
            per_client.to_string(),
            "-D".into(),
            "k=0".into(),
            "-D".into(),
            format!("tag={tag}"),
            "-f".into(),
            file.display().to_string(),
        ];
        let command = format!("pgbench {} DATABASE_URL", args.join(" "));
        let cpu_before = cpu::children_ticks(std::process::id()).unwrap_or(0);
        let started = Instant::now();
        let output = Command::new(&self.bin)
            .args(&args)
            .arg(&self.url)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu_after = cpu::children_ticks(std::process::id()).unwrap_or(0);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = |text: &str| {
            text.lines()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ")
        };
        if !output.status.success() {
            // pgbench's own complaint (a SQL error, a bad meta-command) first.
            let cause = stderr
                .lines()
                .find(|line| line.contains("ERROR") || line.contains("error") || line.contains("FATAL"))
                .unwrap_or_default();
            return Err(format!(
                "pgbench {name} failed ({}; script {}): {cause} | {}",
                output.status,
                file.display(),
                tail(&stderr)
            )
            .into());
        }
        let expected = (clients * per_client) as u64;
        let transactions = field(&stdout, "number of transactions actually processed:")
            .and_then(|v| v.split('/').next()?.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("pgbench {name}: no transaction count in its output: {}", tail(&stdout)))?;
        if transactions != expected {
            return Err(format!(
                "pgbench {name}: {transactions} of {expected} transactions went through (script {}): {}",
                file.display(),
                tail(&stderr)
            )
            .into());
        }
        let tps = field(&stdout, "tps =")
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or_else(|| format!("pgbench {name}: no tps in its output: {}", tail(&stdout)))?;
        let latency_avg_ms =
            field(&stdout, "latency average =").and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
        Ok(Outcome {
            tps,
            transactions,
            latency_avg_ms,
            seconds,
            client_cpu_us: cpu_after.saturating_sub(cpu_before) as f64 * TICK_US,
            command,
        })
    }
}

/// The rest of the first line of `text` that starts with `prefix`.
fn field<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .map(str::trim)
}

/// A directory for this run's scripts (results.json keeps their text too).
pub(crate) fn script_dir(run: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hookline-bench-pgbench-{run}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decide_script_keeps_no_consumer_placeholder() {
        let script = ingestion_script();
        assert!(!script.contains('{'), "{script}");
        assert!(script.contains(":tag::bigint"));
    }
}
