//! How a [`Report`] is shown: the table a person reads, and the JUnit XML
//! a CI system reads (`--junit`).

use crate::junit::{Suite, Verdict};

use super::{Got, Outcome, Report};

impl Report {
    /// The report as JUnit XML (`--junit`), for CI systems to show: one
    /// test case per case, a failure with its explanation, the cases the
    /// dialect cannot say as skipped.
    pub fn junit(&self) -> String {
        let class = format!("hookline.check.{}", self.dialect);
        let mut suite = Suite::new(format!("hookline check {} ({})", self.url, self.dialect));
        for o in &self.outcomes {
            let verdict = match (o.passed, &o.explanation) {
                (true, _) => Verdict::Pass,
                (false, why) => Verdict::Failure {
                    message: why.clone().unwrap_or_else(|| "failed".to_owned()),
                    text: format!(
                        "expected {}, got {}",
                        o.expected.label(),
                        o.got.iter().map(Got::label).collect::<Vec<_>>().join(", ")
                    ),
                },
            };
            suite.push(&class, o.name, verdict);
        }
        for skipped in &self.not_applicable {
            let reason = skipped.why.to_owned();
            suite.push(&class, skipped.name, Verdict::Skipped { reason });
        }
        suite.to_xml()
    }

    /// The table, with ANSI colours when `colour`.
    pub fn table(&self, colour: bool) -> String {
        let paint = |text: &str, code: &str| crate::paint(text, code, colour);
        let got = |o: &Outcome| o.got.iter().map(Got::label).collect::<Vec<_>>().join(", ");
        let width = |f: &dyn Fn(&Outcome) -> usize, title: &str| {
            self.outcomes.iter().map(f).max().unwrap_or(0).max(title.len())
        };
        let (w_case, w_exp, w_got) = (
            width(&|o| o.name.len(), "case"),
            width(&|o| o.expected.label().len(), "expected"),
            width(&|o| got(o).len(), "got"),
        );
        let mut out = format!("{:w_case$}  {:w_exp$}  {:w_got$}  result\n", "case", "expected", "got");
        for o in &self.outcomes {
            let verdict = if o.passed {
                paint("pass", "32")
            } else {
                paint("FAIL", "1;31")
            };
            out.push_str(&format!(
                "{:w_case$}  {:w_exp$}  {:w_got$}  {verdict}",
                o.name,
                o.expected.label(),
                got(o)
            ));
            if let Some(why) = &o.explanation {
                out.push_str(&format!("  {why}"));
            }
            out.push('\n');
        }
        for skipped in &self.not_applicable {
            out.push_str(&format!(
                "{:w_case$}  n/a in the {} dialect: {}\n",
                skipped.name, self.dialect, skipped.why
            ));
        }
        if let Some(hint) = self.hint() {
            out.push_str(&format!("{}\n", paint(&hint, "33")));
        }
        let failed = self.failed().count();
        let summary = if failed == 0 {
            paint(&format!("all {} cases passed", self.outcomes.len()), "32")
        } else {
            paint(&format!("{failed} of {} cases failed", self.outcomes.len()), "1;31")
        };
        out.push_str(&format!("{summary}\n"));
        out
    }
}
