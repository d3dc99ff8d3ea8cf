//! The tally of chaos faults (`GET /chaos`): `jobs/finish.lua` counts each
//! fault sent around an attempt in the partition's `{p}:chaos` hash, by
//! fault and the class of the receiver's answer (`<fault>:<class>`), and
//! those answered unlike a correct receiver (`<fault>:unexpected`).

use std::collections::HashMap;

use futures_util::future::try_join_all;
use hookline_contract::chaos::{Fault, FaultCount};

use super::keys::Scope;
use super::{Store, StoreError};

impl Store {
    /// The chaos faults injected so far around the deliveries of `scope`,
    /// by fault, over every partition: how many, the answers by class, and
    /// how many were unexpected.
    pub async fn chaos_counts(&self, scope: Scope<'_>) -> Result<Vec<FaultCount>, StoreError> {
        let tallies = try_join_all(self.parts.iter().map(|part| async move {
            let mut conn = part.conn.clone();
            let tally: HashMap<String, u64> = redis::cmd("HGETALL")
                .arg(part.keys.chaos_of(scope))
                .query_async(&mut conn)
                .await?;
            Ok::<_, StoreError>(tally)
        }))
        .await?;
        let mut faults: Vec<FaultCount> = Vec::new();
        for (field, count) in tallies.into_iter().flatten() {
            let Some((fault, answer)) = field.split_once(':') else {
                continue;
            };
            let Ok(fault) = fault.parse::<Fault>() else { continue };
            let index = match faults.iter().position(|row| row.fault == fault) {
                Some(index) => index,
                None => {
                    faults.push(FaultCount {
                        fault,
                        injected: 0,
                        answers: Default::default(),
                        unexpected: 0,
                    });
                    faults.len() - 1
                }
            };
            let row = &mut faults[index];
            if answer == "unexpected" {
                row.unexpected += count;
            } else {
                row.injected += count;
                *row.answers.entry(answer.to_owned()).or_default() += count;
            }
        }
        faults.sort_by_key(|row| row.fault);
        Ok(faults)
    }
}
