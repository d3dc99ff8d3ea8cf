//! CPU time from `/proc`: what a process has used (user + system, in clock
//! ticks of 10 ms: USER_HZ is 100 on Linux), and how busy the whole machine
//! was (every core, `/proc/stat`). Differences of two readings say what one
//! operation cost each process, and whether the cores were saturated.

/// Microseconds in a clock tick.
pub(crate) const TICK_US: f64 = 10_000.0;

/// From `/proc/<pid>/stat`: the parent's pid, and utime, stime, cutime,
/// cstime (ticks).
fn stat(pid: u32) -> Option<(u32, [u64; 4])> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: field 3 is
    // index 0, so ppid (4) is 1 and utime … cstime (14-17) are 11-14.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let mut times = [0; 4];
    for (i, time) in times.iter_mut().enumerate() {
        *time = fields.get(11 + i)?.parse().ok()?;
    }
    Some((ppid, times))
}

/// CPU time (user + system) `pid` has used, in ticks.
pub(crate) fn ticks(pid: u32) -> Option<u64> {
    let (_, [user, system, _, _]) = stat(pid)?;
    Some(user + system)
}

/// CPU time of `pid`'s children that exited and were waited for
/// (cutime + cstime), in ticks: a pgbench the bench ran, say.
pub(crate) fn children_ticks(pid: u32) -> Option<u64> {
    let (_, [_, _, user, system]) = stat(pid)?;
    Some(user + system)
}

/// CPU time of `pid` and its children: the running ones' own, the exited
/// ones' as `pid`'s cutime + cstime. A PostgreSQL postmaster and its
/// backends, say.
pub(crate) fn tree_ticks(pid: u32) -> Option<u64> {
    let (_, [user, system, children_user, children_system]) = stat(pid)?;
    let mut sum = user + system + children_user + children_system;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((ppid, [user, system, _, _])) = stat(child)
            && ppid == pid
        {
            sum += user + system;
        }
    }
    Some(sum)
}

/// Busy and total ticks over every core since boot (`/proc/stat`; idle and
/// iowait count as not busy).
pub(crate) fn machine() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Cores kept busy on average between two [`machine`] readings.
pub(crate) fn cores_busy(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    if total > 0.0 { cores * busy / total } else { 0.0 }
}

/// Nanoseconds each thread of `pid` has run (`/proc/<pid>/task/<tid>/schedstat`),
/// by thread id: 10 ms ticks are several µs of a quick batch's jobs, these
/// are exact. None when `pid` is gone or the kernel keeps no schedstat.
pub(crate) fn thread_ns(pid: u32) -> Option<std::collections::BTreeMap<u32, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read.
        if let Some(ns) = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            out.insert(tid, ns);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// µs the threads ran between two [`thread_ns`] readings: each thread's
/// growth (a new one's whole time); a thread that ended meanwhile loses
/// its share, never makes the figure negative.
pub(crate) fn threads_used_us(
    before: &std::collections::BTreeMap<u32, u64>,
    after: &std::collections::BTreeMap<u32, u64>,
) -> f64 {
    let ns: u64 = after
        .iter()
        .map(|(tid, now)| now.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1_000.0
}
