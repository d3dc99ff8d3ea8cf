//! What became of a `hookline trigger` run, and its verdict.
//!
//! Each case (by its index in the run) has a fate — delivered, dead, still
//! pending, or lost (the help desk can no longer show it: a 404, or it never
//! answered about it) — and the faults its attempt log records, in log
//! order: with the run's seed, the same list comes back on a replay.
//!
//! The books say whether the run can be judged at all: every case
//! published (created) is delivered, dead or still pending, exactly once,
//! and every fault injected was answered either as expected or not. A run
//! whose books do not balance (a case lost, one documentId given to two
//! cases, a fault counted wrong, a review the help desk would not create)
//! is **void**: it says nothing about the receiver, so it is neither a pass
//! nor a fail, and `hookline trigger` exits with its own code (3).

use std::collections::{BTreeMap, BTreeSet};

use hookline_contract::chaos::Fault;
use hookline_contract::{CaseView, DeliveryState, DocumentStatus};
use serde::Serialize;

use crate::junit::{self, Suite};
use crate::paint;

/// How many unexpected answers are quoted, per fault and over the run.
const QUOTED: usize = 10;
/// How many of a fault's unexpected answers its JUnit failure quotes.
const QUOTED_PER_FAULT: usize = 3;

/// How the receiver answered the faults of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultTally {
    pub injected: u64,
    /// Answered as a correct receiver would.
    pub as_expected: u64,
    /// Answered otherwise (the attempt log says how).
    pub unexpected: u64,
    /// The first few unexpected answers: `documentId: what happened`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_unexpected: Vec<String>,
}

/// What became of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    Delivered,
    Dead,
    /// Neither delivered nor dead when the wait ran out.
    Pending,
    /// The help desk can no longer show it (404), or never answered about it.
    Lost,
}

/// One case of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseOutcome {
    /// Its place in the run (0 is the first `POST /document`).
    pub index: usize,
    pub document_id: String,
    /// Its `Hookline-Chaos-Seed`.
    pub seed: u64,
    pub fate: Fate,
    /// The faults its attempt log records, in log order.
    pub faults: Vec<Fault>,
}

/// The run's books: whether every case and fault is accounted for once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Books {
    /// Cases created.
    pub published: usize,
    pub delivered: usize,
    pub dead: usize,
    pub pending: usize,
    pub lost: usize,
    /// documentIds the help desk gave to more than one case of the run.
    pub counted_twice: Vec<String>,
    /// Faults whose counts disagree: injected ≠ as expected + unexpected,
    /// or ≠ what the cases' logs list.
    pub unbalanced_faults: Vec<Fault>,
}

impl Books {
    /// The books of `cases`, with the fault `tallies` made from them.
    pub fn of(cases: &[CaseOutcome], tallies: &BTreeMap<Fault, FaultTally>) -> Self {
        let count = |fate: Fate| cases.iter().filter(|case| case.fate == fate).count();
        let mut seen = BTreeSet::new();
        let counted_twice: BTreeSet<String> = cases
            .iter()
            .filter(|case| !seen.insert(case.document_id.as_str()))
            .map(|case| case.document_id.clone())
            .collect();
        let listed = |fault: Fault| -> u64 {
            let times = cases
                .iter()
                .flat_map(|case| &case.faults)
                .filter(|f| **f == fault)
                .count();
            u64::try_from(times).unwrap_or(u64::MAX)
        };
        let mut faults: BTreeSet<Fault> = tallies.keys().copied().collect();
        faults.extend(cases.iter().flat_map(|case| case.faults.iter().copied()));
        let unbalanced_faults = faults
            .into_iter()
            .filter(|fault| {
                let tally = tallies.get(fault).cloned().unwrap_or_default();
                tally.injected != tally.as_expected + tally.unexpected || tally.injected != listed(*fault)
            })
            .collect();
        Self {
            published: cases.len(),
            delivered: count(Fate::Delivered),
            dead: count(Fate::Dead),
            pending: count(Fate::Pending),
            lost: count(Fate::Lost),
            counted_twice: counted_twice.into_iter().collect(),
            unbalanced_faults,
        }
    }

    /// Published = delivered + dead + still pending, nothing lost, nothing
    /// counted twice, every fault's answers adding up.
    pub fn balanced(&self) -> bool {
        self.problems().is_empty()
    }

    /// Why the books do not balance, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lost > 0 {
            problems.push(format!(
                "{} of {} cases lost: the help desk can no longer show them (404, or no answer)",
                self.lost, self.published
            ));
        }
        if self.published != self.delivered + self.dead + self.pending + self.lost {
            problems.push(format!(
                "published {} ≠ delivered {} + dead {} + pending {} + lost {}",
                self.published, self.delivered, self.dead, self.pending, self.lost
            ));
        }
        for id in &self.counted_twice {
            problems.push(format!("{id} was given to more than one case: counted twice"));
        }
        for fault in &self.unbalanced_faults {
            problems.push(format!(
                "{fault}: injected ≠ as expected + unexpected, or ≠ the cases' logs"
            ));
        }
        problems
    }
}

/// What the run says about the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every review delivered, every fault answered as a correct receiver would.
    Passed,
    /// The receiver's fault: a review dead or not delivered in time, or a
    /// fault answered unlike a correct receiver.
    Failed,
    /// The books do not balance: the run cannot be judged.
    #[default]
    Void,
}

/// What became of the reviews.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub helpdesk: String,
    pub to: String,
    pub chaos: Option<String>,
    /// The run's seed: `--seed` with it replays the same faults.
    pub seed: u64,
    pub created: usize,
    /// The cases created, in the run's order (for `hookline replay`).
    pub document_ids: Vec<String>,
    /// `POST /document` refused or failed, with the first reason.
    pub not_created: usize,
    pub first_refusal: Option<String>,
    pub delivered: usize,
    pub dead: usize,
    /// Neither delivered nor dead when the wait ran out.
    pub pending: usize,
    /// The help desk can no longer show them.
    pub lost: usize,
    pub accepted: usize,
    pub declined: usize,
    /// Delivery attempts (not counting chaos faults) over all cases.
    pub attempts: u64,
    pub faults: BTreeMap<Fault, FaultTally>,
    /// The first few faults answered unlike a correct receiver:
    /// `documentId: fault: what happened`.
    pub unexpected: Vec<String>,
    /// Every case, by index: its fate and the faults injected.
    pub cases: Vec<CaseOutcome>,
    pub books: Books,
    pub verdict: Verdict,
}

impl Summary {
    pub fn new(helpdesk: String, to: String, chaos: Option<String>, seed: u64) -> Self {
        Self {
            helpdesk,
            to,
            chaos,
            seed,
            ..Self::default()
        }
    }

    /// Counts case number `index` (seeded with `seed`) as the help desk last
    /// showed it; `None`: lost.
    pub fn add(&mut self, index: usize, document_id: &str, seed: u64, case: Option<&CaseView>) {
        let mut outcome = CaseOutcome {
            index,
            document_id: document_id.to_owned(),
            seed,
            fate: Fate::Lost,
            faults: Vec::new(),
        };
        if let Some(case) = case {
            outcome.fate = match case.delivery.state {
                DeliveryState::Delivered => Fate::Delivered,
                DeliveryState::Dead => Fate::Dead,
                _ => Fate::Pending,
            };
            match case.status {
                DocumentStatus::Accepted => self.accepted += 1,
                DocumentStatus::Declined => self.declined += 1,
                _ => {}
            }
            for entry in &case.delivery.log {
                let Some(fault) = entry.chaos else {
                    self.attempts += 1;
                    continue;
                };
                outcome.faults.push(fault);
                let tally = self.faults.entry(fault).or_default();
                tally.injected += 1;
                match &entry.error {
                    None => tally.as_expected += 1,
                    Some(error) => {
                        tally.unexpected += 1;
                        if tally.first_unexpected.len() < QUOTED {
                            tally.first_unexpected.push(format!("{}: {error}", case.document_id));
                        }
                        if self.unexpected.len() < QUOTED {
                            self.unexpected.push(format!("{}: {fault}: {error}", case.document_id));
                        }
                    }
                }
            }
        }
        match outcome.fate {
            Fate::Delivered => self.delivered += 1,
            Fate::Dead => self.dead += 1,
            Fate::Pending => self.pending += 1,
            Fate::Lost => self.lost += 1,
        }
        self.cases.push(outcome);
    }

    /// Once every case is added: orders them by index, and draws up the
    /// books and the verdict.
    pub fn close(&mut self) {
        self.cases.sort_by_key(|case| case.index);
        self.document_ids = self.cases.iter().map(|case| case.document_id.clone()).collect();
        self.created = self.cases.len();
        self.books = Books::of(&self.cases, &self.faults);
        self.verdict = if !self.books.balanced() || self.not_created > 0 {
            Verdict::Void
        } else if self.dead > 0 || self.pending > 0 || self.faults.values().any(|tally| tally.unexpected > 0) {
            Verdict::Failed
        } else {
            Verdict::Passed
        };
    }

    /// Every review delivered, every fault answered as a correct receiver
    /// would answer it, and the books balance.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }

    /// Why the run is void, one line each (empty unless it is).
    pub fn void_because(&self) -> Vec<String> {
        let mut why = self.books.problems();
        if self.not_created > 0 {
            why.push(format!(
                "{} of {} reviews not created: {}",
                self.not_created,
                self.not_created + self.created,
                self.first_refusal.as_deref().unwrap_or("?")
            ));
        }
        why
    }

    /// The summary as text, with ANSI colours when `colour`; the first line
    /// gives the seed.
    pub fn text(&self, colour: bool) -> String {
        let mut out = format!("seed {} (replay this run with --seed {})\n", self.seed, self.seed);
        out.push_str(&format!(
            "{} reviews sent through {} to {} (chaos: {})\n",
            self.created,
            self.helpdesk,
            self.to,
            self.chaos.as_deref().unwrap_or("the help desk's own")
        ));
        if self.not_created > 0 {
            out.push_str(&paint(
                &format!(
                    "{} not created: {}\n",
                    self.not_created,
                    self.first_refusal.as_deref().unwrap_or("?")
                ),
                "1;31",
                colour,
            ));
        }
        out.push_str(&format!(
            "delivered {}, dead {}, still pending {}, lost {}; decisions: {} ACCEPTED, {} DECLINED; {} delivery attempts\n",
            self.delivered, self.dead, self.pending, self.lost, self.accepted, self.declined, self.attempts
        ));
        if !self.faults.is_empty() {
            out.push_str(&format!(
                "\n{:18}  {:>8}  {:>11}  {:>10}\n",
                "fault", "injected", "as expected", "unexpected"
            ));
            for (fault, tally) in &self.faults {
                let unexpected = format!("{:>10}", tally.unexpected);
                out.push_str(&format!(
                    "{:18}  {:>8}  {:>11}  {}\n",
                    fault.as_str(),
                    tally.injected,
                    tally.as_expected,
                    if tally.unexpected > 0 {
                        paint(&unexpected, "1;31", colour)
                    } else {
                        unexpected
                    }
                ));
            }
        }
        for line in &self.unexpected {
            out.push_str(&format!("  {line}\n"));
        }
        let faulted: Vec<&CaseOutcome> = self.cases.iter().filter(|case| !case.faults.is_empty()).collect();
        if !faulted.is_empty() {
            out.push_str("\nfaults per case, in log order:\n");
            for case in faulted {
                let faults: Vec<&str> = case.faults.iter().map(|fault| fault.as_str()).collect();
                out.push_str(&format!("  #{:<4} {}\n", case.index, faults.join(" ")));
            }
        }
        let books = &self.books;
        out.push_str(&format!(
            "\nbooks: published {} = delivered {} + dead {} + pending {}{}\n",
            books.published,
            books.delivered,
            books.dead,
            books.pending,
            if books.lost > 0 {
                format!(" (+ lost {})", books.lost)
            } else {
                String::new()
            }
        ));
        out.push_str(&match self.verdict {
            Verdict::Passed => paint(
                "PASSED: every review delivered, every fault answered as expected, the books balance\n",
                "32",
                colour,
            ),
            Verdict::Failed => paint(
                "FAILED: the receiver did not survive everything (see above)\n",
                "1;31",
                colour,
            ),
            Verdict::Void => {
                let mut void = paint(
                    "VOID: the books do not balance, so this run says nothing about the receiver:\n",
                    "1;33",
                    colour,
                );
                for why in self.void_because() {
                    void.push_str(&format!("  {why}\n"));
                }
                void
            }
        });
        out
    }

    /// The run as JUnit XML (`--junit`): a test case per fault kind
    /// injected, one for "every review delivered", one for "books balance".
    pub fn junit(&self) -> String {
        const CLASS: &str = "hookline.trigger";
        let mut suite = Suite::new(format!("hookline trigger {} (seed {})", self.to, self.seed));
        for (fault, tally) in &self.faults {
            let verdict = if tally.unexpected == 0 {
                junit::Verdict::Pass
            } else {
                junit::Verdict::Failure {
                    message: format!(
                        "{} of {} answered unlike a correct receiver",
                        tally.unexpected, tally.injected
                    ),
                    text: tally
                        .first_unexpected
                        .iter()
                        .take(QUOTED_PER_FAULT)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
            };
            suite.push(CLASS, fault.as_str(), verdict);
        }
        let undelivered: Vec<String> = self
            .cases
            .iter()
            .filter(|case| case.fate != Fate::Delivered)
            .take(QUOTED)
            .map(|case| format!("#{} {}: {:?}", case.index, case.document_id, case.fate))
            .collect();
        let delivered = if self.delivered == self.created && self.not_created == 0 {
            junit::Verdict::Pass
        } else {
            junit::Verdict::Failure {
                message: format!(
                    "delivered {} of {}: dead {}, still pending {}, lost {}, not created {}",
                    self.delivered,
                    self.created + self.not_created,
                    self.dead,
                    self.pending,
                    self.lost,
                    self.not_created
                ),
                text: undelivered.join("\n"),
            }
        };
        suite.push(CLASS, "every review delivered", delivered);
        let books = match self.void_because() {
            why if why.is_empty() => junit::Verdict::Pass,
            why => junit::Verdict::Failure {
                message: "the run is void: the books do not balance".to_owned(),
                text: why.join("\n"),
            },
        };
        suite.push(CLASS, "books balance", books);
        suite.to_xml()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hookline_contract::{AttemptView, DeliveryView};

    use super::*;

    fn entry(chaos: Option<Fault>, error: Option<&str>) -> AttemptView {
        AttemptView {
            at: Utc::now(),
            status_code: Some(200),
            error: error.map(str::to_owned),
            duration_ms: 1,
            chaos,
            note: None,
        }
    }

    fn case(id: &str, state: DeliveryState, log: Vec<AttemptView>) -> CaseView {
        CaseView {
            document_id: id.to_owned(),
            agent_id: "agent".to_owned(),
            document_url: "https://example.com/a.pdf".to_owned(),
            callback_url: None,
            event: None,
            subscription_id: None,
            id: None,
            status: DocumentStatus::Accepted,
            created_at: Utc::now(),
            due_at: Utc::now(),
            decided_at: None,
            delivery: DeliveryView {
                state,
                webhook_id: "msg_1".to_owned(),
                attempts: 1,
                next_attempt_at: None,
                delivered_at: None,
                last_error: None,
                log,
            },
            endpoint: None,
            dialect: None,
            chaos_seed: None,
            trace_id: None,
        }
    }

    fn delivered(id: &str, log: Vec<AttemptView>) -> CaseView {
        case(id, DeliveryState::Delivered, log)
    }

    #[test]
    fn a_run_whose_cases_are_all_accounted_for_balances_and_passes() {
        let mut summary = Summary::new("h".into(), "t".into(), None, 7);
        let log = vec![
            entry(Some(Fault::ForgedSignature), None),
            entry(None, None),
            entry(Some(Fault::Duplicate), None),
        ];
        summary.add(1, "b", 11, Some(&delivered("b", Vec::new())));
        summary.add(0, "a", 10, Some(&delivered("a", log)));
        summary.close();
        assert!(summary.books.balanced(), "{:?}", summary.books.problems());
        assert_eq!(summary.verdict, Verdict::Passed);
        assert_eq!(summary.document_ids, ["a", "b"], "in the run's order");
        assert_eq!(summary.cases[0].faults, [Fault::ForgedSignature, Fault::Duplicate]);
        assert_eq!((summary.books.published, summary.books.delivered), (2, 2));
        let text = summary.text(false);
        assert!(text.starts_with("seed 7 "), "{text}");
        assert!(text.contains("  #0    forged_signature duplicate\n"), "{text}");
    }

    #[test]
    fn a_lost_case_or_one_counted_twice_makes_the_run_void_not_failed() {
        let mut lost = Summary::new("h".into(), "t".into(), None, 1);
        lost.add(0, "a", 1, Some(&delivered("a", Vec::new())));
        lost.add(1, "b", 2, None);
        // A dead case too: void still wins, the run cannot be judged.
        lost.add(2, "c", 3, Some(&case("c", DeliveryState::Dead, Vec::new())));
        lost.close();
        assert_eq!((lost.books.lost, lost.verdict), (1, Verdict::Void));
        assert!(
            lost.books.problems()[0].starts_with("1 of 3 cases lost"),
            "{:?}",
            lost.books
        );
        assert!(lost.text(false).contains("VOID: the books do not balance"));

        let mut twice = Summary::new("h".into(), "t".into(), None, 1);
        twice.add(0, "a", 1, Some(&delivered("a", Vec::new())));
        twice.add(1, "a", 2, Some(&delivered("a", Vec::new())));
        twice.close();
        assert_eq!(twice.books.counted_twice, ["a"]);
        assert_eq!(twice.verdict, Verdict::Void);

        let mut refused = Summary::new("h".into(), "t".into(), None, 1);
        refused.add(0, "a", 1, Some(&delivered("a", Vec::new())));
        refused.not_created = 1;
        refused.close();
        assert!(refused.books.balanced());
        assert_eq!(refused.verdict, Verdict::Void);
    }

    #[test]
    fn faults_whose_counts_disagree_unbalance_the_books() {
        let mut summary = Summary::new("h".into(), "t".into(), None, 1);
        let log = vec![entry(Some(Fault::Replay), Some("answered HTTP 500"))];
        summary.add(0, "a", 1, Some(&delivered("a", log)));
        summary.close();
        assert!(summary.books.balanced());
        assert_eq!(summary.verdict, Verdict::Failed, "a receiver's fault");
        // A tally that does not add up.
        let mut tallies = summary.faults.clone();
        tallies.entry(Fault::Replay).or_default().as_expected += 1;
        assert_eq!(Books::of(&summary.cases, &tallies).unbalanced_faults, [Fault::Replay]);
        // A fault in a case's log the tallies never counted.
        let mut cases = summary.cases.clone();
        cases[0].faults.push(Fault::Delay);
        assert_eq!(Books::of(&cases, &summary.faults).unbalanced_faults, [Fault::Delay]);
    }

    #[test]
    fn the_junit_report_has_a_case_per_fault_and_the_delivery_and_books_cases() {
        let mut summary = Summary::new("h".into(), "http://r/<hook>".into(), None, 5);
        let log = vec![
            entry(Some(Fault::ForgedSignature), Some("accepted it (HTTP 200)")),
            entry(None, None),
            entry(Some(Fault::Duplicate), None),
        ];
        summary.add(0, "a", 1, Some(&delivered("a", log)));
        summary.add(1, "b", 2, None);
        summary.close();
        let xml = summary.junit();
        assert!(xml.contains("tests=\"4\" failures=\"3\" skipped=\"0\""), "{xml}");
        assert!(xml.contains("hookline trigger http://r/&lt;hook&gt; (seed 5)"), "{xml}");
        assert!(xml.contains("name=\"duplicate\"/>"), "{xml}");
        assert!(
            xml.contains(
                "<failure message=\"1 of 1 answered unlike a correct receiver\">a: accepted it (HTTP 200)</failure>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("delivered 1 of 2: dead 0, still pending 0, lost 1"),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"the run is void: the books do not balance\">1 of 2 cases lost"),
            "{xml}"
        );
    }
}
