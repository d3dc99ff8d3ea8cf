//! `hookline trigger`: has a help desk send reviews to any URL, with a
//! chaos profile if asked, waits until each is delivered or dead, and sums
//! up what became of them and of every fault, from the help desk's own
//! attempt logs (`GET /document/{id}`). `hookline replay` has it deliver
//! cases again (`POST /document/{id}/redeliver`): the same `webhook-id` and
//! body with a fresh timestamp, for a receiver's idempotency.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookline_contract::chaos::{ChaosProfile, Fault};
use hookline_contract::dialect::Dialect;
use hookline_contract::{CaseView, DeliveryState, DocumentAccepted, DocumentStatus, headers};
use serde::Serialize;

use crate::paint;

/// Requests to the help desk in flight at once.
const CONCURRENCY: usize = 16;
/// Pause between two looks at the cases still under way.
const POLL: Duration = Duration::from_millis(500);

/// What to trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The help desk's base URL.
    pub helpdesk: String,
    /// Where the webhooks go (`X-Callback-Url`).
    pub to: String,
    pub count: usize,
    pub chaos: Option<ChaosProfile>,
    pub accept_ratio: Option<f64>,
    /// A key of the help desk's `HELPDESK_API_KEYS`, if it has any.
    pub api_key: Option<String>,
    /// How long to wait for the last delivery.
    pub wait: Duration,
    /// Sign the reviews as this provider does (`None`: the help desk's
    /// default, Standard Webhooks).
    pub dialect: Option<Dialect>,
}

/// How the receiver answered the faults of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    pub injected: u64,
    /// Answered as a correct receiver would.
    pub as_expected: u64,
    /// Answered otherwise (the attempt log says how).
    pub unexpected: u64,
}

/// What became of the reviews.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub helpdesk: String,
    pub to: String,
    pub chaos: Option<String>,
    pub created: usize,
    /// The cases created (for `hookline replay`).
    pub document_ids: Vec<String>,
    /// `POST /document` refused or failed, with the first reason.
    pub not_created: usize,
    pub first_refusal: Option<String>,
    pub delivered: usize,
    pub dead: usize,
    /// Neither delivered nor dead when the wait ran out.
    pub pending: usize,
    pub accepted: usize,
    pub declined: usize,
    /// Delivery attempts (not counting chaos faults) over all cases.
    pub attempts: u64,
    pub faults: BTreeMap<Fault, FaultTally>,
    /// The first few faults answered unlike a correct receiver:
    /// `documentId: fault: what happened`.
    pub unexpected: Vec<String>,
}

impl Summary {
    /// Every review delivered, every fault answered as a correct receiver
    /// would answer it.
    pub fn passed(&self) -> bool {
        self.not_created == 0
            && self.dead == 0
            && self.pending == 0
            && self.faults.values().all(|tally| tally.unexpected == 0)
    }

    fn add(&mut self, case: &CaseView) {
        match case.delivery.state {
            DeliveryState::Delivered => self.delivered += 1,
            DeliveryState::Dead => self.dead += 1,
            _ => self.pending += 1,
        }
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
            let tally = self.faults.entry(fault).or_default();
            tally.injected += 1;
            match &entry.error {
                None => tally.as_expected += 1,
                Some(error) => {
                    tally.unexpected += 1;
                    if self.unexpected.len() < 10 {
                        self.unexpected.push(format!("{}: {fault}: {error}", case.document_id));
                    }
                }
            }
        }
    }

    /// The summary as text, with ANSI colours when `colour`.
    pub fn text(&self, colour: bool) -> String {
        let mut out = format!(
            "{} reviews sent through {} to {} (chaos: {})\n",
            self.created,
            self.helpdesk,
            self.to,
            self.chaos.as_deref().unwrap_or("the help desk's own")
        );
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
            "delivered {}, dead {}, still pending {}; decisions: {} ACCEPTED, {} DECLINED; {} delivery attempts\n",
            self.delivered, self.dead, self.pending, self.accepted, self.declined, self.attempts
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
        out.push_str(&if self.passed() {
            paint(
                "every review delivered, every fault answered as expected\n",
                "32",
                colour,
            )
        } else {
            paint("the receiver did not survive everything (see above)\n", "1;31", colour)
        });
        out
    }
}

/// Why the run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("TLS set-up failed")]
    Tls(#[from] hookline_kit::tls::TlsConfigError),
    #[error("the help desk at {0} created no review: {1}")]
    NothingCreated(String, String),
}

/// How a help desk answered `POST /document/{id}/redeliver`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub document_id: String,
    /// The help desk's status; `None` if it could not be reached.
    pub status: Option<u16>,
    /// The case's `webhook-id` when scheduled, else the help desk's reason.
    pub detail: String,
}

impl Replayed {
    pub fn scheduled(&self) -> bool {
        self.status == Some(202)
    }
}

/// Has the help desk at `helpdesk` deliver each case again, now.
pub async fn replay(
    helpdesk: &str,
    api_key: Option<&str>,
    document_ids: &[String],
) -> Result<Vec<Replayed>, TriggerError> {
    let client = client()?;
    let base = helpdesk.trim_end_matches('/');
    let mut replayed = Vec::with_capacity(document_ids.len());
    for id in document_ids {
        let request = authorized(client.post(format!("{base}/document/{id}/redeliver")), api_key);
        let (status, detail) = match request.send().await {
            Err(e) => (None, format!("cannot reach the help desk: {e}")),
            Ok(mut response) => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let detail = match response.status().as_u16() {
                    202 => format!(
                        "scheduled again, webhook-id {}",
                        body["delivery"]["webhookId"].as_str().unwrap_or("?")
                    ),
                    _ => body["detail"].as_str().unwrap_or("no reason given").to_owned(),
                };
                (Some(response.status().as_u16()), detail)
            }
        };
        replayed.push(Replayed {
            document_id: id.clone(),
            status,
            detail,
        });
    }
    Ok(replayed)
}

fn client() -> Result<awc::Client, TriggerError> {
    let tls = hookline_kit::tls::client_config(None, None)?;
    Ok(awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(tls))
        .timeout(Duration::from_secs(10))
        .finish())
}

/// Creates the reviews, then waits for their deliveries; `progress` hears
/// `(stage, done, of)`.
pub async fn run(trigger: &Trigger, mut progress: impl FnMut(&str, usize, usize)) -> Result<Summary, TriggerError> {
    let client = client()?;
    let base = trigger.helpdesk.trim_end_matches('/').to_owned();
    let mut summary = Summary {
        helpdesk: base.clone(),
        to: trigger.to.clone(),
        chaos: trigger.chaos.as_ref().map(ChaosProfile::to_string),
        ..Summary::default()
    };

    let mut created = Vec::with_capacity(trigger.count);
    let mut creations = futures_util::stream::iter(0..trigger.count)
        .map(|index| create(&client, &base, trigger, index))
        .buffer_unordered(CONCURRENCY);
    let mut done = 0;
    while let Some(result) = creations.next().await {
        done += 1;
        progress("created", done, trigger.count);
        match result {
            Ok(document_id) => created.push(document_id),
            Err(refusal) => {
                summary.not_created += 1;
                summary.first_refusal.get_or_insert_with(|| refusal.to_string());
            }
        }
    }
    drop(creations);
    summary.created = created.len();
    summary.document_ids.clone_from(&created);
    if created.is_empty() && trigger.count > 0 {
        let why = summary.first_refusal.clone().unwrap_or_default();
        return Err(TriggerError::NothingCreated(base, why));
    }

    // Look again at what is still under way until nothing is, or the wait ends.
    let deadline = Instant::now() + trigger.wait;
    let mut waiting = created;
    let mut finished: Vec<CaseView> = Vec::with_capacity(waiting.len());
    loop {
        let looked: Vec<(String, Option<CaseView>)> = futures_util::stream::iter(waiting.drain(..))
            .map(|id| async {
                let case = show(&client, &base, trigger, &id).await;
                (id, case)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut last_look = Vec::new();
        for (id, case) in looked {
            match case {
                Some(case) if matches!(case.delivery.state, DeliveryState::Delivered | DeliveryState::Dead) => {
                    finished.push(case);
                }
                Some(case) if Instant::now() >= deadline => last_look.push(case),
                _ => waiting.push(id),
            }
        }
        progress("finished", finished.len(), summary.created);
        if waiting.is_empty() || Instant::now() >= deadline {
            // A case never seen again counts as pending.
            summary.pending += waiting.len();
            finished.extend(last_look);
            break;
        }
        actix_web::rt::time::sleep(POLL).await;
    }
    for case in &finished {
        summary.add(case);
    }
    Ok(summary)
}

/// `request` with the help desk's API key, if there is one.
fn authorized(request: awc::ClientRequest, api_key: Option<&str>) -> awc::ClientRequest {
    match api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

/// Why the help desk created no case for one `POST /document`.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("cannot reach the help desk: {0}")]
    Unreachable(awc::error::SendRequestError),
    #[error("HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("an answer that is not a DocumentAccepted: {0}")]
    NotAccepted(serde_json::Error),
}

/// `POST /document`: the new case's id, or why not.
async fn create(client: &awc::Client, base: &str, trigger: &Trigger, index: usize) -> Result<String, Refusal> {
    let mut request = client
        .post(format!("{base}/document"))
        .insert_header((headers::CALLBACK_URL, trigger.to.as_str()));
    if let Some(chaos) = &trigger.chaos {
        request = request.insert_header((headers::CHAOS, chaos.to_string()));
    }
    if let Some(ratio) = trigger.accept_ratio {
        request = request.insert_header((headers::ACCEPT_RATIO, ratio.to_string()));
    }
    if let Some(dialect) = trigger.dialect {
        request = request.insert_header((headers::DIALECT, dialect.name()));
    }
    let body = serde_json::json!({
        "documentUrl": format!("https://example.com/hookline-trigger/{index}.pdf"),
    });
    let mut response = authorized(request, trigger.api_key.as_deref())
        .send_json(&body)
        .await
        .map_err(Refusal::Unreachable)?;
    let bytes = response.body().await.unwrap_or_default();
    if !response.status().is_success() {
        return Err(Refusal::Refused {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice::<DocumentAccepted>(&bytes)
        .map(|accepted| accepted.document_id)
        .map_err(Refusal::NotAccepted)
}

/// `GET /document/{id}`, `None` if it cannot be read now.
async fn show(client: &awc::Client, base: &str, trigger: &Trigger, id: &str) -> Option<CaseView> {
    let mut response = authorized(client.get(format!("{base}/document/{id}")), trigger.api_key.as_deref())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<CaseView>().limit(1024 * 1024).await.ok()
}
