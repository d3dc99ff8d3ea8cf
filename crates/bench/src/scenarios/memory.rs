//! Scenario 6, memory: the RSS of each watched process (`--pids`) idle, at
//! the start of the run, and its peak under the load of the other
//! scenarios (sampled while they ran).

use std::collections::BTreeMap;

use serde_json::json;

use super::report::{Report, Target};

pub(super) fn memory(report: &mut Report, idle: &BTreeMap<String, u64>, loaded: &BTreeMap<String, u64>) {
    for (name, bytes) in idle {
        report.row(
            "6 memory",
            &format!("{name} RSS idle"),
            *bytes as f64 / 1_048_576.0,
            "MB",
            Target::None,
        );
    }
    for (name, bytes) in loaded {
        report.row(
            "6 memory",
            &format!("{name} RSS peak under load"),
            *bytes as f64 / 1_048_576.0,
            "MB",
            Target::AtMost(50.0),
        );
    }
    report.details.insert(
        "memory".into(),
        json!({"idle_bytes": idle, "peak_under_load_bytes": loaded}),
    );
}
