//! `hookline check`: a conformance run against any receiver, in the
//! signature [dialect](Dialect) it verifies (Standard Webhooks by default;
//! Stripe's, GitHub's, Shopify's or Slack's with `--dialect`). The battery
//! adapts to what a dialect can express: one that signs no timestamp has no
//! stale case ([`Case::applies`]), and the report says which cases did not
//! apply and why.
//!
//! Every case sends one request (the concurrent duplicate sends two) built
//! from the tutorial's flat payload
//! `{"documentId","agentId","documentStatus":"ACCEPTED"}` with fresh random
//! ids, signed with [`SecretSet::sign`] and then spoilt in one way, and
//! judges the answer ([`judge`]):
//!
//! * **accepted** — a 2xx, or a 404: the ids are made up, so a receiver
//!   that checked the signature and then found no such document has still
//!   accepted the message.
//! * **refused** — any 4xx except 404, 409 and 429. A 404 to a forged or
//!   stale message means the receiver looked the document up before it
//!   checked the signature; 409 and 429 speak of state and load, not of
//!   the signature.
//! * A 5xx, or no answer within the timeout, fails every case: bad input
//!   is the sender's fault, and a hang ties up its workers.
//!
//! The oversized body is the one exception: a receiver may also close the
//! connection while the body is still being sent (as proxies do when a
//! limit is hit); that counts as refused.

use std::time::Duration;

use hookline_contract::dialect::Dialect;
use serde::Serialize;

mod report;
mod request;

pub use request::{BadSecret, FixtureError, Payload, PayloadError, Signer};

use request::{Message, Sender, request_for};

/// The body size of the oversized case: far above any sensible limit for a
/// status webhook, small enough to send quickly.
pub const OVERSIZED_BYTES: usize = 2 * 1024 * 1024;
/// How far the stale and future timestamps are from now.
pub const SKEW_SECS: i64 = 10 * 60;

/// The cases, in the order they run (the duplicates reuse the first
/// case's webhook-id, so they come right after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    Valid,
    DuplicateSequential,
    DuplicateConcurrent,
    StaleTimestamp,
    FutureTimestamp,
    ForgedSignature,
    OtherSecret,
    TamperedBody,
    MissingWebhookId,
    MissingTimestamp,
    MissingSignature,
    UnknownVersionOnly,
    UnknownVersionAndV1,
    OversizedBody,
    UnknownFields,
    ReformattedBody,
}

impl Case {
    pub const ALL: [Case; 16] = [
        Case::Valid,
        Case::DuplicateSequential,
        Case::DuplicateConcurrent,
        Case::StaleTimestamp,
        Case::FutureTimestamp,
        Case::ForgedSignature,
        Case::OtherSecret,
        Case::TamperedBody,
        Case::MissingWebhookId,
        Case::MissingTimestamp,
        Case::MissingSignature,
        Case::UnknownVersionOnly,
        Case::UnknownVersionAndV1,
        Case::OversizedBody,
        Case::UnknownFields,
        Case::ReformattedBody,
    ];

    /// The short name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Case::Valid => "valid webhook",
            Case::DuplicateSequential => "same webhook-id again",
            Case::DuplicateConcurrent => "same webhook-id twice at once",
            Case::StaleTimestamp => "timestamp 10 min old",
            Case::FutureTimestamp => "timestamp 10 min ahead",
            Case::ForgedSignature => "forged signature",
            Case::OtherSecret => "signed with another secret",
            Case::TamperedBody => "body changed after signing",
            Case::MissingWebhookId => "no webhook-id",
            Case::MissingTimestamp => "no webhook-timestamp",
            Case::MissingSignature => "no webhook-signature",
            Case::UnknownVersionOnly => "only a v2 signature",
            Case::UnknownVersionAndV1 => "v2 and a valid v1",
            Case::OversizedBody => "2 MiB body",
            Case::UnknownFields => "unknown JSON fields",
            Case::ReformattedBody => "body not in compact JSON",
        }
    }

    /// The name in `dialect`, whose headers may be called otherwise.
    pub fn name_in(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (_, Dialect::Standard) => self.name(),
            (Case::MissingSignature, _) => "no signature header",
            (Case::DuplicateSequential, _) => "same delivery again",
            (Case::DuplicateConcurrent, _) => "same delivery twice at once",
            (Case::MissingTimestamp, _) => "no timestamp header",
            _ => self.name(),
        }
    }

    /// Whether the case can be said in `dialect`; why not when it cannot.
    pub fn applies(self, dialect: Dialect) -> Result<(), &'static str> {
        match self {
            Case::StaleTimestamp | Case::FutureTimestamp if !dialect.signs_timestamp() => {
                Err("the dialect signs no timestamp: a receiver tells a replay by its delivery id, not by time")
            }
            Case::FutureTimestamp if dialect == Dialect::Stripe => {
                Err("Stripe's libraries only refuse a timestamp older than the tolerance, not one ahead")
            }
            Case::MissingWebhookId if dialect != Dialect::Standard => Err("the dialect signs no delivery id"),
            Case::MissingTimestamp if dialect == Dialect::Stripe => {
                Err("the timestamp is part of the signature header (t=)")
            }
            Case::MissingTimestamp if !dialect.signs_timestamp() => Err("the dialect sends no signed timestamp"),
            Case::UnknownVersionOnly | Case::UnknownVersionAndV1 if dialect != Dialect::Standard => {
                Err("signature versions (v1,) are Standard Webhooks'")
            }
            _ => Ok(()),
        }
    }

    pub fn expected(self) -> Expected {
        match self {
            Case::Valid | Case::DuplicateSequential | Case::DuplicateConcurrent => Expected::Accepted,
            Case::UnknownVersionAndV1 | Case::UnknownFields | Case::ReformattedBody => Expected::Accepted,
            Case::OversizedBody => Expected::TooLarge,
            _ => Expected::Refused,
        }
    }
}

/// What a conforming receiver does with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// 2xx, or 404 (made-up document ids).
    Accepted,
    /// 4xx other than 404, 409, 429.
    Refused,
    /// As refused, or the connection closed while sending.
    TooLarge,
}

impl Expected {
    pub fn label(self) -> &'static str {
        match self {
            Expected::Accepted => "accepted (2xx/404)",
            Expected::Refused => "refused (4xx)",
            Expected::TooLarge => "refused (4xx/413)",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Got {
    Status(u16),
    Timeout,
    /// No connection could be made (nothing listens, DNS, TLS).
    NoConnection(String),
    /// The connection broke off before an answer.
    ConnectionError(String),
}

impl Got {
    pub fn label(&self) -> String {
        match self {
            Got::Status(status) => status.to_string(),
            Got::Timeout => "timeout".to_owned(),
            Got::NoConnection(_) => "no connection".to_owned(),
            Got::ConnectionError(_) => "connection error".to_owned(),
        }
    }
}

/// How an answer fell short of what a conforming receiver answers; its
/// text is the table's one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nonconforming {
    #[error("no answer within {}: a receiver must answer quickly (queue slow work)", humantime::format_duration(*.0))]
    NoAnswer(Duration),
    #[error("could not connect: {0}")]
    NoConnection(String),
    #[error("no HTTP answer: {0}")]
    NoHttpAnswer(String),
    #[error("{0}: a server error; bad input must get a 4xx, and a 5xx makes senders retry")]
    ServerError(u16),
    /// Refused what it must accept ([`why_accept`]).
    #[error("{0}: {why}", why = why_accept(*.1))]
    NotAccepted(u16, Case),
    /// Accepted what it must refuse ([`why_refuse`]).
    #[error("{0}: {why}", why = why_refuse(*.1))]
    NotRefused(u16, Case),
    #[error("404: the receiver looked the document up before checking {what}", what = what_is_wrong(*.0))]
    LookedUpFirst(Case),
    #[error("{0} is about state or load, not a refusal of {what}", what = what_is_wrong(*.1))]
    StateOrLoad(u16, Case),
    #[error("{0}: expected a 4xx refusal")]
    NotARefusal(u16),
}

/// Whether `got` is what a conforming receiver answers to `case`; how it
/// fell short when it is not.
pub fn judge(case: Case, got: &Got, timeout: Duration) -> Result<(), Nonconforming> {
    let status = match got {
        Got::Status(status) => *status,
        Got::Timeout => return Err(Nonconforming::NoAnswer(timeout)),
        Got::NoConnection(why) => return Err(Nonconforming::NoConnection(why.clone())),
        Got::ConnectionError(_) if case.expected() == Expected::TooLarge => return Ok(()),
        Got::ConnectionError(why) => return Err(Nonconforming::NoHttpAnswer(why.clone())),
    };
    if status >= 500 {
        return Err(Nonconforming::ServerError(status));
    }
    match case.expected() {
        Expected::Accepted if (200..300).contains(&status) || status == 404 => Ok(()),
        Expected::Accepted => Err(Nonconforming::NotAccepted(status, case)),
        Expected::Refused | Expected::TooLarge => match status {
            200..=299 => Err(Nonconforming::NotRefused(status, case)),
            404 => Err(Nonconforming::LookedUpFirst(case)),
            409 | 429 => Err(Nonconforming::StateOrLoad(status, case)),
            400..=499 => Ok(()),
            _ => Err(Nonconforming::NotARefusal(status)),
        },
    }
}

fn why_accept(case: Case) -> &'static str {
    match case {
        Case::DuplicateSequential | Case::DuplicateConcurrent => {
            "a redelivery (same webhook-id) must be acknowledged, or the sender retries it for days"
        }
        Case::UnknownVersionAndV1 => "one valid v1 signature is enough; unknown versions must be skipped",
        Case::UnknownFields => "senders add fields; a receiver must ignore the ones it does not know",
        Case::ReformattedBody => {
            "the signature is over the raw body as sent: a receiver that parses the JSON and serialises it again to verify fails any sender that does not write compact JSON in the same key order"
        }
        _ => "a correctly signed webhook was not accepted (wrong secret or URL?)",
    }
}

fn why_refuse(case: Case) -> &'static str {
    match case {
        Case::StaleTimestamp | Case::FutureTimestamp => {
            "accepted: the timestamp is not checked, so a captured request can be replayed"
        }
        Case::ForgedSignature | Case::OtherSecret => "accepted: the signature is not checked",
        Case::TamperedBody => "accepted: the signature is not checked over the raw body",
        Case::MissingWebhookId | Case::MissingTimestamp | Case::MissingSignature => {
            "accepted without a required header"
        }
        Case::UnknownVersionOnly => "accepted: the signature's version prefix is ignored",
        Case::OversizedBody => "accepted 2 MiB: a receiver must cap the body size",
        _ => "accepted something it must refuse",
    }
}

fn what_is_wrong(case: Case) -> &'static str {
    match case {
        Case::StaleTimestamp | Case::FutureTimestamp => "the timestamp",
        Case::OversizedBody => "the body size",
        Case::MissingWebhookId | Case::MissingTimestamp | Case::MissingSignature => "the headers",
        _ => "the signature",
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub case: Case,
    pub name: &'static str,
    pub expected: Expected,
    /// One answer per request the case sent.
    pub got: Vec<Got>,
    pub passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// A case the run's dialect cannot say, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotApplicable {
    pub case: Case,
    pub name: &'static str,
    pub why: &'static str,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    /// The signature dialect the webhooks were signed in.
    pub dialect: String,
    pub outcomes: Vec<Outcome>,
    /// The cases left out: the dialect cannot say them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<NotApplicable>,
    /// See [`Report::hint`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|outcome| outcome.passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = Case> + '_ {
        self.outcomes.iter().filter(|o| !o.passed).map(|o| o.case)
    }

    /// A 404 to every request says more about the URL than the receiver.
    pub fn hint(&self) -> Option<String> {
        let every_404 = self
            .outcomes
            .iter()
            .flat_map(|o| &o.got)
            .filter(|got| !matches!(got, Got::Status(413) | Got::ConnectionError(_)))
            .collect::<Vec<_>>();
        let every_404 = !every_404.is_empty() && every_404.iter().all(|got| **got == Got::Status(404));
        every_404.then(|| format!("every answer was a 404: is {} the receiver's URL?", self.url))
    }
}

/// Where and how to run the battery.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub signer: Signer,
    pub timeout: Duration,
    /// The body of every webhook (`--payload`): the events the receiver
    /// really parses; `None`: the tutorial's review payload, with fresh ids.
    pub payload: Option<Payload>,
}

/// Why the run could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("TLS set-up failed")]
    Tls(#[from] hookline_kit::tls::TlsConfigError),
    #[error("public keys (whpk_) only verify: check signs, so it needs the signing key (whsk_)")]
    CannotSign,
}

/// Runs every case against `target`, in order; `progress` is called
/// before each.
pub async fn run(target: &Target, mut progress: impl FnMut(usize, Case)) -> Result<Report, CheckError> {
    let tls = hookline_kit::tls::client_config(None, None)?;
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(tls))
        .timeout(target.timeout)
        // A redirect is the receiver's answer (a 3xx fails), not a hop to follow.
        .disable_redirects()
        .finish();
    let sender = Sender { client, target };
    if matches!(target.signer, Signer::Verifying(_)) {
        return Err(CheckError::CannotSign);
    }
    let payload = target.payload.as_ref();
    let valid = Message::new(payload);
    let signer = &target.signer;
    let dialect = signer.dialect();
    let mut outcomes = Vec::with_capacity(Case::ALL.len());
    let mut not_applicable = Vec::new();
    for (index, case) in Case::ALL.into_iter().enumerate() {
        if let Err(why) = case.applies(dialect) {
            not_applicable.push(NotApplicable {
                case,
                name: case.name_in(dialect),
                why,
            });
            continue;
        }
        progress(index, case);
        let got = match case {
            Case::DuplicateConcurrent => {
                let (a, b) =
                    futures_util::future::join(sender.send(valid.signed(signer)), sender.send(valid.signed(signer)))
                        .await;
                vec![a, b]
            }
            Case::Valid | Case::DuplicateSequential => vec![sender.send(valid.signed(signer)).await],
            other => vec![sender.send(request_for(other, signer, payload)).await],
        };
        let verdicts: Vec<_> = got.iter().map(|got| judge(case, got, target.timeout)).collect();
        let explanation = verdicts.into_iter().find_map(Result::err).map(|why| why.to_string());
        outcomes.push(Outcome {
            case,
            name: case.name_in(dialect),
            expected: case.expected(),
            passed: explanation.is_none(),
            explanation,
            got,
        });
    }
    let mut report = Report {
        url: target.url.clone(),
        dialect: dialect.to_string(),
        outcomes,
        not_applicable,
        hint: None,
    };
    report.hint = report.hint();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use chrono::Utc;
    use hookline_contract::asymmetric::{PublicKeys, SigningKey};
    use hookline_contract::headers;

    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn a_404_accepts_a_valid_webhook_but_fails_a_forged_one() {
        assert_eq!(judge(Case::Valid, &Got::Status(404), T), Ok(()));
        let why = judge(Case::ForgedSignature, &Got::Status(404), T)
            .unwrap_err()
            .to_string();
        assert!(why.contains("before checking the signature"), "{why}");
    }

    #[test]
    fn forged_and_stale_cases_pass_only_on_a_4xx_that_is_not_404_409_or_429() {
        for case in [Case::ForgedSignature, Case::StaleTimestamp, Case::MissingSignature] {
            for ok in [400, 401, 403, 422] {
                assert_eq!(judge(case, &Got::Status(ok), T), Ok(()), "{case:?} {ok}");
            }
            for bad in [200, 204, 302, 404, 409, 429, 500, 503] {
                assert!(judge(case, &Got::Status(bad), T).is_err(), "{case:?} {bad}");
            }
        }
    }

    #[test]
    fn accepted_cases_pass_on_2xx_or_404_only() {
        for case in [
            Case::Valid,
            Case::DuplicateSequential,
            Case::UnknownVersionAndV1,
            Case::UnknownFields,
        ] {
            for ok in [200, 202, 204, 404] {
                assert_eq!(judge(case, &Got::Status(ok), T), Ok(()), "{case:?} {ok}");
            }
            for bad in [400, 401, 409, 500] {
                assert!(judge(case, &Got::Status(bad), T).is_err(), "{case:?} {bad}");
            }
        }
    }

    #[test]
    fn timeouts_and_lost_connections_fail_every_case_except_a_broken_off_oversized_body() {
        for case in Case::ALL {
            assert!(judge(case, &Got::Timeout, T).is_err(), "{case:?}");
        }
        let lost = Got::ConnectionError("reset".into());
        assert!(judge(Case::Valid, &lost, T).is_err());
        assert!(judge(Case::ForgedSignature, &lost, T).is_err());
        assert_eq!(judge(Case::OversizedBody, &lost, T), Ok(()));
        let nobody_there = Got::NoConnection("refused".into());
        for case in Case::ALL {
            assert!(judge(case, &nobody_there, T).is_err(), "{case:?}");
        }
        assert_eq!(judge(Case::OversizedBody, &Got::Status(413), T), Ok(()));
        assert!(judge(Case::OversizedBody, &Got::Status(200), T).is_err());
    }

    fn report_of(got: Got) -> Report {
        let outcomes = Case::ALL
            .into_iter()
            .map(|case| Outcome {
                case,
                name: case.name(),
                expected: case.expected(),
                got: vec![got.clone()],
                passed: false,
                explanation: None,
            })
            .collect();
        Report {
            url: "http://example.test/hook".into(),
            dialect: Dialect::Standard.to_string(),
            outcomes,
            not_applicable: Vec::new(),
            hint: None,
        }
    }

    #[test]
    fn the_junit_report_counts_and_explains_failures_and_escapes_what_it_quotes() {
        let mut report = report_of(Got::Status(200));
        report.url = "http://example.test/hook?a=1&b=<2>".into();
        report.outcomes[0].passed = true;
        report.outcomes[1].explanation = Some("200: accepted \"forged\"".into());
        report.not_applicable.push(NotApplicable {
            case: Case::StaleTimestamp,
            name: Case::StaleTimestamp.name(),
            why: "no timestamp",
        });
        let xml = report.junit();
        let failures = report.failed().count();
        assert!(
            xml.contains(&format!(
                "tests=\"{}\" failures=\"{failures}\" skipped=\"1\"",
                report.outcomes.len() + 1
            )),
            "{xml}"
        );
        assert!(xml.contains("a=1&amp;b=&lt;2&gt;"), "{xml}");
        assert!(
            xml.contains("<failure message=\"200: accepted &quot;forged&quot;\">"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"no timestamp\"/>"), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), report.outcomes.len() + 1);
    }

    #[test]
    fn an_event_s_fixture_is_its_type_s_file_and_a_missing_one_lists_what_there_is() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stripe");
        let paid = Payload::fixture(&dir, "invoice.paid").unwrap();
        assert_eq!(paid.0["type"], "invoice.paid");
        let missing = Payload::fixture(&dir, "charge.refunded").unwrap_err().to_string();
        assert!(missing.contains("fixtures/stripe/charge.refunded.json"), "{missing}");
        assert!(missing.ends_with("has customer.created, invoice.paid"), "{missing}");
        let outside = Payload::fixture(&dir, "../stripe/invoice.paid").unwrap_err();
        assert!(matches!(outside, FixtureError::Missing { .. }), "{outside}");
    }

    #[test]
    fn a_payload_of_ours_is_sent_as_it_is_and_tampered_with_in_place() {
        let payload = Payload::parse(r#"{"type":"invoice.paid","data":{"object":{"id":"in_1"}},"n":1}"#).unwrap();
        let message = Message::new(Some(&payload));
        let body = message.bytes();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::Value::Object(payload.0.clone())
        );
        let tampered = message.tampered_body();
        assert_eq!(body.len(), tampered.len());
        assert_eq!(body.iter().zip(&tampered).filter(|(a, b)| a != b).count(), 1);
        assert!(matches!(Payload::parse("[1, 2]"), Err(PayloadError::NotAnObject)));
        assert!(matches!(Payload::parse("{"), Err(PayloadError::NotJson(_))));
    }

    #[test]
    fn only_a_run_of_404s_asks_whether_the_url_is_right() {
        assert!(report_of(Got::Status(404)).hint().is_some());
        assert!(report_of(Got::NoConnection("refused".into())).hint().is_none());
        let mut mixed = report_of(Got::Status(404));
        mixed.outcomes[5].got = vec![Got::Status(401)];
        assert!(mixed.hint().is_none());
    }

    #[test]
    fn the_spoilt_requests_fail_verification_and_the_good_ones_pass_in_every_dialect() {
        let now = Utc::now().timestamp();
        for dialect in Dialect::ALL {
            let secret = match dialect {
                Dialect::Standard => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                _ => "a provider's secret",
            };
            let signer = Signer::new(dialect, secret).unwrap();
            let key = dialect.key(secret).unwrap();
            let mut applied = 0;
            for case in Case::ALL.into_iter().filter(|case| case.applies(dialect).is_ok()) {
                let request = request_for(case, &signer, None);
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                let verified = dialect.verify(&key, header, &request.body, now).is_ok();
                let should = case.expected() != Expected::Refused;
                assert_eq!(verified, should, "{dialect} {case:?}");
                applied += 1;
            }
            let expected = if dialect.signs_timestamp() { 10 } else { 8 };
            assert!(applied >= expected, "{dialect}: {applied} cases");
        }
        // Standard Webhooks with an Ed25519 key (v1a): the receiver holds
        // only the public key.
        let key = SigningKey::from_seed([9; 32]);
        let keys: PublicKeys = key.public_key().parse().unwrap();
        let signer = Signer::new(Dialect::Standard, &format!("whsk_{}", BASE64.encode([9; 32]))).unwrap();
        for case in Case::ALL {
            let request = request_for(case, &signer, None);
            let verified = keys
                .verify(
                    &request.header(headers::WEBHOOK_ID),
                    &request.header(headers::WEBHOOK_TIMESTAMP),
                    &request.header(headers::WEBHOOK_SIGNATURE),
                    &request.body,
                    now,
                )
                .is_ok();
            assert_eq!(verified, case.expected() != Expected::Refused, "v1a {case:?}");
        }
        assert!(matches!(
            Signer::new(Dialect::Standard, &key.public_key()),
            Ok(Signer::Verifying(_))
        ));
        let message = Message::new(None);
        let (body, tampered) = (message.bytes(), message.tampered_body());
        assert_eq!(body.len(), tampered.len());
        assert_eq!(body.iter().zip(&tampered).filter(|(a, b)| a != b).count(), 1);
    }
}
