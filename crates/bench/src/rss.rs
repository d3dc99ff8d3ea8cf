//! Resident memory of the services: `VmRSS` from `/proc/<pid>/status`,
//! sampled every 100 ms by a thread that keeps each process's peak.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The processes watched, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct RssWatch {
    pids: Vec<(String, u32)>,
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// `VmRSS` of `pid` in bytes, if it still runs.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl RssWatch {
    pub(crate) fn new(pids: Vec<(String, u32)>) -> Self {
        let watch = Self {
            pids,
            peaks: Arc::default(),
        };
        let sampler = watch.clone();
        if !watch.pids.is_empty() {
            std::thread::spawn(move || {
                loop {
                    sampler.sample();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        watch
    }

    fn sample(&self) {
        let mut peaks = self.peaks.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, pid) in &self.pids {
            if let Some(bytes) = rss_bytes(*pid) {
                let peak = peaks.entry(name.clone()).or_default();
                *peak = (*peak).max(bytes);
            }
        }
    }

    /// RSS of each process right now.
    pub(crate) fn now(&self) -> BTreeMap<String, u64> {
        self.pids
            .iter()
            .filter_map(|(name, pid)| Some((name.clone(), rss_bytes(*pid)?)))
            .collect()
    }

    /// The peak of each process since the last call, and start afresh.
    pub(crate) fn take_peaks(&self) -> BTreeMap<String, u64> {
        self.sample();
        std::mem::take(&mut *self.peaks.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }
}
