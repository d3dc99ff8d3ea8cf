//! What Redis did for a batch of jobs, per job: every command it ran
//! (`INFO commandstats` before and after: calls and µs inside each, the
//! commands a script runs counted too), and the calls clients sent, by
//! script (a short sample with the slow log recording every command).
//!
//! `INFO commandstats` has one line for `evalsha`, whatever the script;
//! the slow log keeps each call's arguments (so the script's SHA1) and its
//! duration, and never the commands a script runs inside. Recording every
//! call costs Redis a little, so the sample is a batch of its own, after
//! the measured one: it gives the split, never the CPU figures.
//!
//! A SHA1 is named from the help desk's sources: each script is sent as
//! `prelude.lua`, a newline and its own file (`store/partition.rs`), so
//! hashing the same text here gives the same SHA1. One that matches none
//! (sources of another commit, a changed assembly) shows as `evalsha <sha>`.

use std::collections::BTreeMap;
use std::path::Path;

use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::BoxError;

/// Calls and µs spent inside, by command (`INFO commandstats` names:
/// `evalsha`, `hget`, `config|set`).
pub(crate) type Commands = BTreeMap<String, (u64, u64)>;

/// Commands the bench itself sends while it measures: not the help desk's work.
fn is_ours(command: &str) -> bool {
    ["info", "config", "slowlog", "dbsize", "ping", "hello", "client"]
        .iter()
        .any(|ours| command == *ours || command.starts_with(&format!("{ours}|")))
}

/// `INFO commandstats` as [`Commands`]:
/// `cmdstat_evalsha:calls=120,usec=4800,usec_per_call=40.00,...`.
pub(crate) fn parse_commandstats(info: &str) -> Commands {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let stat = |key: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            Some((name.to_owned(), (stat("calls")?, stat("usec")?)))
        })
        .collect()
}

pub(crate) async fn commandstats(conn: &mut MultiplexedConnection) -> Result<Commands, BoxError> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await?;
    Ok(parse_commandstats(&info))
}

/// One command's (or script's) share of a batch.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct PerJob {
    pub(crate) calls_per_job: f64,
    pub(crate) usec_per_call: f64,
    /// A script's: the commands it ran inside, per call (the slow log's
    /// entries between it and the call before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inside_per_call: Option<f64>,
}

/// Calls per job and µs per call of what ran between `before` and `after`,
/// the bench's own commands left out.
pub(crate) fn per_job(before: &Commands, after: &Commands, jobs: u64) -> BTreeMap<String, PerJob> {
    after
        .iter()
        .filter(|(name, _)| !is_ours(name))
        .filter_map(|(name, (calls, usec))| {
            let (calls_before, usec_before) = before.get(name).copied().unwrap_or((0, 0));
            let calls = calls.checked_sub(calls_before).filter(|c| *c > 0)?;
            let usec = usec.saturating_sub(usec_before);
            Some((name.clone(), per(calls, usec, jobs)))
        })
        .collect()
}

fn per(calls: u64, usec: u64, jobs: u64) -> PerJob {
    PerJob {
        calls_per_job: calls as f64 / jobs.max(1) as f64,
        usec_per_call: usec as f64 / calls.max(1) as f64,
        inside_per_call: None,
    }
}

/// Calls per job summed over `commands`.
pub(crate) fn total_calls(commands: &BTreeMap<String, PerJob>) -> f64 {
    commands.values().map(|c| c.calls_per_job).sum()
}

/// SHA1 → name (`jobs/claim.lua`) of every script under the help desk's
/// `store` folder, hashed as the help desk sends it.
pub(crate) fn script_names(store: &Path) -> Result<BTreeMap<String, String>, BoxError> {
    let prelude = std::fs::read_to_string(store.join("prelude.lua"))
        .map_err(|e| format!("{}: {e}", store.join("prelude.lua").display()))?;
    let mut names = BTreeMap::new();
    for folder in std::fs::read_dir(store)?.flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(folder.path())?.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|ext| ext != "lua") {
                continue;
            }
            let body = std::fs::read_to_string(&path)?;
            let sha = redis::Script::new(&format!("{prelude}\n{body}")).get_hash().to_owned();
            let name = format!(
                "{}/{}",
                folder.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            names.insert(sha, name);
        }
    }
    Ok(names)
}

/// Slow-log entries kept during a sample: more than a sample ever sends.
const SAMPLE_ENTRIES: u32 = 500_000;

/// The slow log recording every call, until [`Sample::finish`] puts the
/// settings back.
pub(crate) struct Sample {
    slower_than: String,
    max_len: String,
}

impl Sample {
    pub(crate) async fn start(conn: &mut MultiplexedConnection) -> Result<Self, BoxError> {
        let get = |name: &'static str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
        let (slower, len): ((String, String), (String, String)) = redis::pipe()
            .add_command(get("slowlog-log-slower-than"))
            .add_command(get("slowlog-max-len"))
            .query_async(conn)
            .await?;
        set_slowlog(conn, "0", &SAMPLE_ENTRIES.to_string()).await?;
        Ok(Self {
            slower_than: slower.1,
            max_len: len.1,
        })
    }

    /// Calls per job and µs per call of each command the clients sent
    /// during the sample, `evalsha` by script; the settings restored.
    pub(crate) async fn finish(
        self,
        conn: &mut MultiplexedConnection,
        jobs: u64,
        names: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, PerJob>, BoxError> {
        let log: Value = redis::cmd("SLOWLOG")
            .arg("GET")
            .arg(SAMPLE_ENTRIES)
            .query_async(conn)
            .await?;
        set_slowlog(conn, &self.slower_than, &self.max_len).await?;
        Ok(by_script(&entries(&log, names), jobs))
    }
}

/// Script calls per job and µs per call, by script, from slow-log entries
/// (newest first, as `SLOWLOG GET` gives them). Redis logs the commands a
/// script runs before the script's own entry (each when it completes), so
/// the entries since the previous script's are this one's insides; the
/// help desk sends nothing but scripts while it delivers.
fn by_script(entries: &[(String, u64, bool)], jobs: u64) -> BTreeMap<String, PerJob> {
    let mut tally: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut inside = 0;
    for (name, usec, script) in entries.iter().rev() {
        if !script {
            inside += 1;
            continue;
        }
        let t = tally.entry(name).or_default();
        t.0 += 1;
        t.1 += usec;
        t.2 += inside;
        inside = 0;
    }
    tally
        .into_iter()
        .map(|(name, (calls, usec, inside))| {
            let mut per = per(calls, usec, jobs);
            per.inside_per_call = Some(inside as f64 / calls.max(1) as f64);
            (name.to_owned(), per)
        })
        .collect()
}

/// Sets the slow log's threshold (µs) and length, and empties it.
async fn set_slowlog(conn: &mut MultiplexedConnection, slower_than: &str, max_len: &str) -> Result<(), BoxError> {
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(slower_than)
        .arg("slowlog-max-len")
        .arg(max_len)
        .cmd("SLOWLOG")
        .arg("RESET")
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// Each slow-log entry (`[id, time, µs, [argv...], ...]`) as what was
/// called, its µs, and whether it is a script (named for an `evalsha`);
/// the bench's own commands left out.
fn entries(log: &Value, names: &BTreeMap<String, String>) -> Vec<(String, u64, bool)> {
    let Value::Array(entries) = log else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(fields) = entry else { return None };
            let usec = match fields.get(2)? {
                Value::Int(us) => u64::try_from(*us).ok()?,
                _ => return None,
            };
            let Value::Array(argv) = fields.get(3)? else {
                return None;
            };
            let arg = |i: usize| match argv.get(i) {
                Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            };
            let command = arg(0)?.to_lowercase();
            if is_ours(&command) {
                return None;
            }
            Some(match (command.as_str(), arg(1)) {
                ("evalsha" | "evalsha_ro", Some(sha)) => (
                    names
                        .get(&sha.to_lowercase())
                        .cloned()
                        .unwrap_or_else(|| format!("evalsha {}", sha.get(..12).unwrap_or(&sha))),
                    usec,
                    true,
                ),
                ("eval" | "eval_ro" | "fcall" | "fcall_ro", _) => (command, usec, true),
                _ => (command, usec, false),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_become_calls_and_usec() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=120,usec=4800,usec_per_call=40.00,rejected_calls=0\r\n\
                    cmdstat_config|set:calls=2,usec=10,usec_per_call=5.00\r\n";
        let parsed = parse_commandstats(info);
        assert_eq!(parsed.get("evalsha"), Some(&(120, 4800)));
        assert_eq!(parsed.get("config|set"), Some(&(2, 10)));
    }

    #[test]
    fn per_job_leaves_out_the_benchs_own_commands() {
        let before = parse_commandstats("cmdstat_evalsha:calls=100,usec=1000\ncmdstat_info:calls=1,usec=9");
        let after = parse_commandstats(
            "cmdstat_evalsha:calls=300,usec=9000\ncmdstat_info:calls=5,usec=90\ncmdstat_hget:calls=50,usec=50",
        );
        let got = per_job(&before, &after, 100);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["evalsha", "hget"]);
        assert!((got["evalsha"].calls_per_job - 2.0).abs() < 1e-9);
        assert!((got["evalsha"].usec_per_call - 40.0).abs() < 1e-9);
        assert!((total_calls(&got) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn a_scripts_insides_are_the_entries_logged_before_it() {
        let entry = |name: &str, usec, script| (name.to_owned(), usec, script);
        // Newest first: finish (2 inside), then claim (3 inside), then finish (2 inside).
        let log = [
            entry("jobs/finish.lua", 30, true),
            entry("hset", 1, false),
            entry("zrem", 1, false),
            entry("jobs/claim.lua", 50, true),
            entry("time", 1, false),
            entry("zrange", 1, false),
            entry("hmget", 1, false),
            entry("jobs/finish.lua", 10, true),
            entry("hset", 1, false),
            entry("time", 1, false),
        ];
        let got = by_script(&log, 2);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["jobs/claim.lua", "jobs/finish.lua"]);
        assert!((got["jobs/finish.lua"].calls_per_job - 1.0).abs() < 1e-9);
        assert!((got["jobs/finish.lua"].usec_per_call - 20.0).abs() < 1e-9);
        assert_eq!(got["jobs/finish.lua"].inside_per_call, Some(2.0));
        assert_eq!(got["jobs/claim.lua"].inside_per_call, Some(3.0));
    }

    #[test]
    fn the_help_desks_scripts_are_named_by_the_sha_it_sends() {
        let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../helpdesk/src/store");
        let names = script_names(&store).expect("the help desk's scripts");
        let prelude = std::fs::read_to_string(store.join("prelude.lua")).expect("prelude");
        let claim = std::fs::read_to_string(store.join("jobs/claim.lua")).expect("claim");
        let sha = redis::Script::new(&format!("{prelude}\n{claim}")).get_hash().to_owned();
        assert_eq!(names.get(&sha).map(String::as_str), Some("jobs/claim.lua"));
    }
}
