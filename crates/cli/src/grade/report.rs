//! The grade as a table (text, coloured on a terminal) and as JUnit XML,
//! one test case per check.

use crate::junit::{self, Suite};

use super::{Answer, Ended, Mark, Report};

impl Report {
    /// The table, with ANSI colours when `colour`: a line per check, then
    /// what came, message by message.
    pub fn table(&self, colour: bool) -> String {
        let paint = |text: &str, code: &str| crate::paint(text, code, colour);
        let width = self
            .checks
            .iter()
            .map(|v| v.name.len())
            .max()
            .unwrap_or(0)
            .max("check".len());
        let mut out = format!("{:width$}  {:10}  why\n", "check", "result");
        for v in &self.checks {
            let label = format!("{:10}", v.result.label());
            let label = match v.result {
                Mark::Pass => paint(&label, "32"),
                Mark::Fail | Mark::NotSeen => paint(&label, "1;31"),
                Mark::NotGraded => paint(&label, "33"),
            };
            out.push_str(&format!("{:width$}  {label}  {}\n", v.name, v.why));
        }
        out.push('\n');
        for m in &self.messages {
            let attempts = m
                .attempts
                .iter()
                .map(|a| {
                    let to = if a.followed_redirect { " (followed)" } else { "" };
                    let held = match (a.answer, a.ended) {
                        (Answer::Hang | Answer::SlowBody, Some(Ended::SenderHungUp { after })) => {
                            format!(" {}, hung up after {:.1} s", a.answer.label(), after.as_secs_f64())
                        }
                        (Answer::Hang | Answer::SlowBody, Some(Ended::RanOut)) => {
                            format!(" {}, waited out", a.answer.label())
                        }
                        (Answer::Hang | Answer::SlowBody, None) => format!(" {}, still open", a.answer.label()),
                        _ => String::new(),
                    };
                    format!("{:.1} s {}{held}{to}", a.at.as_secs_f64(), a.answer.status())
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "message {} {}: {attempts}\n",
                m.script.number(),
                m.script.name()
            ));
        }
        if self.wait_ran_out {
            out.push_str(&paint("--wait ran out before every script had ended\n", "33"));
        }
        let lost = self.lost().count();
        let summary = if lost == 0 {
            paint("full marks", "32")
        } else {
            paint(&format!("{lost} of {} checks lost", self.checks.len()), "1;31")
        };
        out.push_str(&format!("{summary}\n"));
        out
    }

    /// The grade as JUnit XML (`--junit`): one test case per check, a check
    /// lost as a failure with its sentence, one not graded as skipped.
    pub fn junit(&self) -> String {
        let class = format!("hookline.grade.{}", self.dialect);
        let mut suite = Suite::new(format!("hookline grade {} ({})", self.url, self.dialect));
        for v in &self.checks {
            let verdict = match v.result {
                Mark::Pass => junit::Verdict::Pass,
                Mark::Fail | Mark::NotSeen => junit::Verdict::Failure {
                    message: v.why.clone(),
                    text: format!("{}: {}", v.result.label(), v.why),
                },
                Mark::NotGraded => junit::Verdict::Skipped { reason: v.why.clone() },
            };
            suite.push(&class, v.name, verdict);
        }
        suite.to_xml()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Verdict};
    use super::*;

    #[test]
    fn the_junit_grade_fails_lost_checks_and_skips_ungraded_ones() {
        let verdict = |check: Check, result: Mark| Verdict {
            check,
            name: check.name(),
            result,
            why: format!("because <{}>", check.name()),
        };
        let report = Report {
            url: "http://127.0.0.1:9100/grade".into(),
            dialect: "standard".into(),
            messages_seen: 5,
            wait_ran_out: true,
            checks: vec![
                verdict(Check::RetriesServerErrors, Mark::Pass),
                verdict(Check::BacksOff, Mark::Fail),
                verdict(Check::TimesOut, Mark::NotSeen),
                verdict(Check::SignsFreshly, Mark::NotGraded),
            ],
            messages: Vec::new(),
        };
        let xml = report.junit();
        assert!(xml.contains("tests=\"4\" failures=\"2\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("because &lt;times out&gt;"), "{xml}");
        assert!(!report.passed());
        assert_eq!(report.lost().collect::<Vec<_>>(), [Check::BacksOff, Check::TimesOut]);
        let table = report.table(false);
        assert!(
            table.contains("2 of 4 checks lost") && table.contains("--wait ran out"),
            "{table}"
        );
    }
}
