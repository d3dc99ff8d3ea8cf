//! JUnit XML, the report format CI systems show as test results: one
//! `<testsuite>` of `<testcase>`s, each passed, failed (with a one-line
//! message and a longer text) or skipped (with why). Written once for every
//! command with a `--junit` report (`check`, `grade`).

/// How one test case came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    Failed { message: String, text: String },
    Skipped { message: String },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestCase {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
}

/// A `<testsuite>` named `suite`, its cases in the class `class`.
pub(crate) fn suite(suite: &str, class: &str, cases: &[TestCase]) -> String {
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let failures = count(|o| matches!(o, Outcome::Failed { .. }));
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
    let class = xml(class);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        xml(suite),
        cases.len(),
    );
    for case in cases {
        let name = xml(&case.name);
        match &case.outcome {
            Outcome::Passed => out.push_str(&format!("  <testcase classname=\"{class}\" name=\"{name}\"/>\n")),
            Outcome::Failed { message, text } => out.push_str(&format!(
                "  <testcase classname=\"{class}\" name=\"{name}\">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                xml(message),
                xml(text),
            )),
            Outcome::Skipped { message } => out.push_str(&format!(
                "  <testcase classname=\"{class}\" name=\"{name}\">\n    <skipped message=\"{}\"/>\n  </testcase>\n",
                xml(message),
            )),
        }
    }
    out.push_str("</testsuite>\n");
    out
}

/// `text` escaped for XML text and attribute values.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
