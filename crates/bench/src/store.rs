//! Direct access to the services' storage, for seeding and checking: the
//! consumer's PostgreSQL (raw SQL through diesel-async) and the help desk's
//! Redis (its own key layout, [`helpdesk::store::Keys`]).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use helpdesk::endpoint::Endpoint;
use helpdesk::store::Keys;
use redis::aio::MultiplexedConnection;

use crate::BoxError;

pub(crate) struct Pg(AsyncPgConnection);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What ingestion changed among the seeded rows.
#[derive(QueryableByName, Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct IngestCheck {
    /// Webhooked rows now holding exactly the decision sent.
    #[diesel(sql_type = BigInt)]
    pub(crate) right: i64,
    /// Webhooked rows holding anything else.
    #[diesel(sql_type = BigInt)]
    pub(crate) wrong: i64,
    /// Control rows (never webhooked) still PENDING_REVIEW.
    #[diesel(sql_type = BigInt)]
    pub(crate) untouched: i64,
    /// Control rows that changed anyway.
    #[diesel(sql_type = BigInt)]
    pub(crate) control_changed: i64,
    /// webhook_receipts rows pointing at the seeded rows.
    #[diesel(sql_type = BigInt)]
    pub(crate) receipts: i64,
}

impl Pg {
    pub(crate) async fn connect(url: &str) -> Result<Self, BoxError> {
        Ok(Self(AsyncPgConnection::establish(url).await?))
    }

    /// `rows` pending reviews whose document ids are `{prefix}{n}`, n = 0..rows.
    pub(crate) async fn seed(&mut self, prefix: &str, rows: i64) -> Result<(), BoxError> {
        diesel::sql_query(
            "INSERT INTO document_reviews (id, document_url, agent_id, document_id) \
             SELECT gen_random_uuid(), 'https://bench.example/ingest.pdf', 'agent-bench', $1 || g \
             FROM generate_series(0, $2 - 1) g",
        )
        .bind::<Text, _>(prefix)
        .bind::<BigInt, _>(rows)
        .execute(&mut self.0)
        .await?;
        Ok(())
    }

    /// Rows `{prefix}n` with n < `sent` were webhooked (even n ACCEPTED, odd DECLINED).
    pub(crate) async fn check_ingest(&mut self, prefix: &str, sent: i64) -> Result<IngestCheck, BoxError> {
        let check = diesel::sql_query(
            "WITH seeded AS ( \
               SELECT id, document_status AS status, substr(document_id, length($1) + 1)::bigint AS n, \
                      CASE WHEN substr(document_id, length($1) + 1)::bigint % 2 = 0 \
                           THEN 'ACCEPTED' ELSE 'DECLINED' END AS expected \
               FROM document_reviews WHERE starts_with(document_id, $1)) \
             SELECT count(*) FILTER (WHERE n < $2 AND status = expected) AS \"right\", \
                    count(*) FILTER (WHERE n < $2 AND status <> expected) AS \"wrong\", \
                    count(*) FILTER (WHERE n >= $2 AND status = 'PENDING_REVIEW') AS \"untouched\", \
                    count(*) FILTER (WHERE n >= $2 AND status <> 'PENDING_REVIEW') AS \"control_changed\", \
                    (SELECT count(*) FROM webhook_receipts w JOIN seeded s ON s.id = w.review_id) AS receipts \
             FROM seeded",
        )
        .bind::<Text, _>(prefix)
        .bind::<BigInt, _>(sent)
        .get_result::<IngestCheck>(&mut self.0)
        .await?;
        Ok(check)
    }

    /// Reviews whose URL starts with `url_prefix` that the help desk accepted
    /// (they have a document id), and how many of those are decided.
    pub(crate) async fn batch_counts(&mut self, url_prefix: &str) -> Result<(i64, i64), BoxError> {
        #[derive(QueryableByName)]
        struct Counts {
            #[diesel(sql_type = BigInt)]
            accepted: i64,
            #[diesel(sql_type = BigInt)]
            decided: i64,
        }
        let c = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE document_id IS NOT NULL) AS accepted, \
                    count(*) FILTER (WHERE document_status <> 'PENDING_REVIEW') AS decided \
             FROM document_reviews WHERE starts_with(document_url, $1)",
        )
        .bind::<Text, _>(url_prefix)
        .get_result::<Counts>(&mut self.0)
        .await?;
        Ok((c.accepted, c.decided))
    }

    /// The help desk's document ids of a batch.
    pub(crate) async fn batch_document_ids(&mut self, url_prefix: &str) -> Result<Vec<String>, BoxError> {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = Text)]
            document_id: String,
        }
        let ids = diesel::sql_query(
            "SELECT document_id FROM document_reviews \
             WHERE starts_with(document_url, $1) AND document_id IS NOT NULL",
        )
        .bind::<Text, _>(url_prefix)
        .load::<Id>(&mut self.0)
        .await?;
        Ok(ids.into_iter().map(|id| id.document_id).collect())
    }

    /// Runs a statement that returns nothing worth keeping.
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<(), BoxError> {
        diesel::sql_query(sql).execute(&mut self.0).await?;
        Ok(())
    }

    /// The server's version and the settings that decide what a commit costs.
    pub(crate) async fn settings(&mut self) -> Result<PgSettings, BoxError> {
        Ok(diesel::sql_query(
            "SELECT current_setting('server_version') AS server_version, current_setting('fsync') AS fsync, \
                    current_setting('synchronous_commit') AS synchronous_commit, \
                    current_setting('wal_sync_method') AS wal_sync_method, \
                    current_setting('full_page_writes') AS full_page_writes, \
                    current_setting('shared_preload_libraries') AS shared_preload_libraries",
        )
        .get_result(&mut self.0)
        .await?)
    }

    /// The cluster's WAL counters and this database's commits so far.
    pub(crate) async fn wal(&mut self) -> Result<WalCounters, BoxError> {
        Ok(diesel::sql_query(
            "SELECT w.wal_records, w.wal_bytes::bigint AS wal_bytes, w.wal_write, w.wal_sync, d.xact_commit, \
                    pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid \
             FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = current_database()",
        )
        .get_result(&mut self.0)
        .await?)
    }

    /// Starts pg_stat_statements afresh; false when it is not loaded
    /// (shared_preload_libraries) and cannot be.
    pub(crate) async fn statements_reset(&mut self) -> bool {
        if self
            .execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .is_err()
        {
            return false;
        }
        self.execute("SELECT pg_stat_statements_reset()").await.is_ok()
    }

    /// The statements that took the most time since the last reset.
    pub(crate) async fn statements_top(&mut self, limit: i64) -> Result<Vec<Statement>, BoxError> {
        Ok(diesel::sql_query(
            "SELECT calls, total_exec_time, mean_exec_time, rows, wal_records, \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query \
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND query !~* 'pg_stat_statements|pg_stat_wal' \
             ORDER BY total_exec_time DESC LIMIT $1",
        )
        .bind::<BigInt, _>(limit)
        .load(&mut self.0)
        .await?)
    }

    /// When the last review of a batch was decided (unix ms).
    pub(crate) async fn batch_last_decided_ms(&mut self, url_prefix: &str) -> Result<i64, BoxError> {
        let c = diesel::sql_query(
            "SELECT coalesce((extract(epoch FROM max(updated_at)) * 1000)::bigint, 0) AS n \
             FROM document_reviews WHERE starts_with(document_url, $1) AND document_status <> 'PENDING_REVIEW'",
        )
        .bind::<Text, _>(url_prefix)
        .get_result::<Count>(&mut self.0)
        .await?;
        Ok(c.n)
    }
}

/// `SHOW`s of the server (see [`Pg::settings`]).
#[derive(QueryableByName, Debug, Clone, serde::Serialize)]
pub(crate) struct PgSettings {
    #[diesel(sql_type = Text)]
    pub(crate) server_version: String,
    #[diesel(sql_type = Text)]
    pub(crate) fsync: String,
    #[diesel(sql_type = Text)]
    pub(crate) synchronous_commit: String,
    #[diesel(sql_type = Text)]
    pub(crate) wal_sync_method: String,
    #[diesel(sql_type = Text)]
    pub(crate) full_page_writes: String,
    #[diesel(sql_type = Text)]
    pub(crate) shared_preload_libraries: String,
}

/// Cumulative counters: `pg_stat_wal` (the cluster's) and `xact_commit`.
#[derive(QueryableByName, Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct WalCounters {
    #[diesel(sql_type = BigInt)]
    pub(crate) wal_records: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) wal_bytes: i64,
    /// WAL writes (`write()` calls).
    #[diesel(sql_type = BigInt)]
    pub(crate) wal_write: i64,
    /// WAL flushes to disk (`fdatasync`): zero with fsync off.
    #[diesel(sql_type = BigInt)]
    pub(crate) wal_sync: i64,
    /// Commits, read-only ones too.
    #[diesel(sql_type = BigInt)]
    pub(crate) xact_commit: i64,
    /// The next transaction id: how many transactions wrote (exact at once,
    /// unlike the others, which backends report when idle).
    #[diesel(sql_type = BigInt)]
    pub(crate) next_xid: i64,
}

impl WalCounters {
    /// What happened between `before` and `self`, per operation.
    pub(crate) fn per_op(&self, before: &Self, ops: u64) -> serde_json::Value {
        let per = |a: i64, b: i64| (a - b) as f64 / ops.max(1) as f64;
        serde_json::json!({
            "ops": ops,
            "commits": per(self.xact_commit, before.xact_commit),
            "write_transactions": per(self.next_xid, before.next_xid),
            "wal_flushes": per(self.wal_sync, before.wal_sync),
            "wal_writes": per(self.wal_write, before.wal_write),
            "wal_records": per(self.wal_records, before.wal_records),
            "wal_bytes": per(self.wal_bytes, before.wal_bytes),
        })
    }
}

/// A line of `pg_stat_statements` (times in ms).
#[derive(QueryableByName, Debug, Clone, serde::Serialize)]
pub(crate) struct Statement {
    #[diesel(sql_type = BigInt)]
    pub(crate) calls: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub(crate) total_exec_time: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub(crate) mean_exec_time: f64,
    #[diesel(sql_type = BigInt)]
    pub(crate) rows: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) wal_records: i64,
    #[diesel(sql_type = Text)]
    pub(crate) query: String,
}

pub(crate) struct Rd {
    conn: MultiplexedConnection,
    keys: Keys,
}

/// Scores of the filler jobs start here: far beyond anything the run schedules.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000; // 2100-01-01

impl Rd {
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, BoxError> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            // Filling a million jobs keeps Redis busy past the default 500 ms answer time.
            conn: client
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_response_timeout(Some(std::time::Duration::from_secs(120))),
                )
                .await?,
            keys: Keys::new(prefix),
        })
    }

    /// The connection, for what measures Redis itself (`crate::redis_stats`).
    pub(crate) fn conn(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }

    /// `used_memory` from `INFO memory`.
    pub(crate) async fn used_memory(&mut self) -> Result<u64, BoxError> {
        let info: String = redis::cmd("INFO").arg("memory").query_async(&mut self.conn).await?;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no used_memory in INFO memory".into())
    }

    /// CPU time Redis has used (`used_cpu_user + used_cpu_sys` of `INFO cpu`), µs.
    pub(crate) async fn cpu_us(&mut self) -> Result<f64, BoxError> {
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut self.conn).await?;
        let seconds = |field: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("no {field} in INFO cpu"))
        };
        Ok((seconds("used_cpu_user")? + seconds("used_cpu_sys")?) * 1e6)
    }

    /// `dueAt` (unix ms) of each case, where it exists.
    pub(crate) async fn due_at_ms(&mut self, document_ids: &[String]) -> Result<Vec<Option<i64>>, BoxError> {
        let mut out = Vec::with_capacity(document_ids.len());
        for chunk in document_ids.chunks(5000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(self.keys.case(id), "dueAt");
            }
            let due: Vec<Option<i64>> = pipe.query_async(&mut self.conn).await?;
            out.extend(due);
        }
        Ok(out)
    }

    /// Filler job `i`'s document id: as long as a real one (a UUID).
    fn filler_id(i: u64) -> String {
        format!("00000000-bench-fill-{i:016}")
    }

    /// Adds filler jobs `from..to` for `callback`, pending far in the
    /// future, written as `Store::schedule` writes a real one (same fields,
    /// same sizes, in the same endpoint's queue as the real jobs to it).
    pub(crate) async fn fill(
        &mut self,
        callback: &str,
        from: u64,
        to: u64,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), BoxError> {
        let now = chrono::Utc::now().timestamp_millis();
        let endpoint = Endpoint::of_str(callback)?;
        let (due, cases) = (self.keys.due(&endpoint), self.keys.cases());
        let mut i = from;
        while i < to {
            let end = (i + 2000).min(to);
            let mut pipe = redis::pipe();
            for n in i..end {
                let id = Self::filler_id(n);
                let score = FAR_FUTURE_MS + i64::try_from(n).unwrap_or(0);
                let fields = [
                    ("documentId", id.clone()),
                    ("agentId", uuid::Uuid::new_v4().to_string()),
                    ("documentUrl", format!("https://example.com/documents/contract-{n}.pdf")),
                    ("callbackUrl", callback.to_owned()),
                    ("endpoint", endpoint.to_string()),
                    ("webhookId", format!("msg_{}", uuid::Uuid::now_v7().simple())),
                    ("status", "PENDING_REVIEW".to_owned()),
                    ("delivery", "SCHEDULED".to_owned()),
                    ("attempts", "0".to_owned()),
                    ("createdAt", now.to_string()),
                    ("dueAt", score.to_string()),
                    ("id", uuid::Uuid::now_v7().to_string()),
                ];
                pipe.hset_multiple(self.keys.case(&id), &fields)
                    .ignore()
                    .zadd(&due, &id, score)
                    .ignore()
                    .zadd(&cases, &id, score)
                    .ignore();
            }
            pipe.query_async::<()>(&mut self.conn).await?;
            progress.inc(end - i);
            i = end;
        }
        Ok(())
    }

    /// Removes filler jobs `0..count` for `callback`.
    pub(crate) async fn unfill(&mut self, callback: &str, count: u64) -> Result<(), BoxError> {
        let endpoint = Endpoint::of_str(callback)?;
        let mut i = 0;
        while i < count {
            let end = (i + 5000).min(count);
            let mut cmd = redis::cmd("UNLINK");
            for n in i..end {
                cmd.arg(self.keys.case(&Self::filler_id(n)));
            }
            cmd.query_async::<()>(&mut self.conn).await?;
            i = end;
        }
        let mut pipe = redis::pipe();
        pipe.zrembyscore(self.keys.due(&endpoint), FAR_FUTURE_MS, "+inf")
            .ignore()
            .zrembyscore(self.keys.cases(), FAR_FUTURE_MS, "+inf")
            .ignore();
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }
}
