//! JUnit XML, the report format CI systems show as tests: one
//! `<testsuite>` of test cases, each passed, failed (a message and a
//! longer text) or skipped (a reason). `check --junit` and `trigger
//! --junit` write one; anything else that judges can build a [`Suite`]
//! the same way.

/// How one test case came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// `message` is the one-line reason, `text` the detail under it.
    Failure {
        message: String,
        text: String,
    },
    Skipped {
        reason: String,
    },
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Groups the cases in a CI system's view (e.g. `hookline.check.stripe`).
    pub class: String,
    pub name: String,
    pub verdict: Verdict,
}

/// A suite of test cases, written in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<TestCase>,
}

impl Suite {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cases: Vec::new(),
        }
    }

    pub fn push(&mut self, class: impl Into<String>, name: impl Into<String>, verdict: Verdict) {
        self.cases.push(TestCase {
            class: class.into(),
            name: name.into(),
            verdict,
        });
    }

    pub fn failures(&self) -> usize {
        self.count(|verdict| matches!(verdict, Verdict::Failure { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|verdict| matches!(verdict, Verdict::Skipped { .. }))
    }

    fn count(&self, which: impl Fn(&Verdict) -> bool) -> usize {
        self.cases.iter().filter(|case| which(&case.verdict)).count()
    }

    /// The suite as a JUnit XML document.
    pub fn to_xml(&self) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            escape(&self.name),
            self.cases.len(),
            self.failures(),
            self.skipped(),
        );
        for case in &self.cases {
            let open = format!(
                "  <testcase classname=\"{}\" name=\"{}\"",
                escape(&case.class),
                escape(&case.name)
            );
            match &case.verdict {
                Verdict::Pass => out.push_str(&format!("{open}/>\n")),
                Verdict::Failure { message, text } => out.push_str(&format!(
                    "{open}>\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                    escape(message),
                    escape(text)
                )),
                Verdict::Skipped { reason } => out.push_str(&format!(
                    "{open}>\n    <skipped message=\"{}\"/>\n  </testcase>\n",
                    escape(reason)
                )),
            }
        }
        out.push_str("</testsuite>\n");
        out
    }
}

/// `text` escaped for XML text and attribute values; characters XML 1.0
/// cannot hold at all (most control characters) become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_counts_its_failures_and_skips_and_escapes_what_it_quotes() {
        let mut suite = Suite::new("run <1> & \"2\"");
        suite.push("k", "passes", Verdict::Pass);
        suite.push(
            "k",
            "fails",
            Verdict::Failure {
                message: "got 'x'".into(),
                text: "a < b\u{1}".into(),
            },
        );
        suite.push("k", "skips", Verdict::Skipped { reason: "n/a".into() });
        let xml = suite.to_xml();
        assert!(
            xml.contains("name=\"run &lt;1&gt; &amp; &quot;2&quot;\" tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("<testcase classname=\"k\" name=\"passes\"/>"), "{xml}");
        assert!(
            xml.contains("<failure message=\"got &apos;x&apos;\">a &lt; b\u{FFFD}</failure>"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"n/a\"/>"), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(xml.ends_with("</testsuite>\n"));
    }
}
