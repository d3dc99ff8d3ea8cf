//! `hookline trigger`: has a help desk send reviews to any URL, with a
//! chaos profile if asked, waits until each is delivered or dead, and sums
//! up what became of them and of every fault, from the help desk's own
//! attempt logs (`GET /document/{id}`). `hookline replay` has it deliver
//! cases again (`POST /document/{id}/redeliver`): the same `webhook-id` and
//! body with a fresh timestamp, for a receiver's idempotency.
//!
//! A run has a seed (`--seed`, else a random one it prints): case number
//! `i` is created with `Hookline-Chaos-Seed:`
//! [`case_seed`](hookline_contract::chaos::seed::case_seed)`(seed, i)`, so
//! the same seed against the same help desk profile injects the same
//! faults into the same cases again ([`summary`] lists them per case).

/// What became of a run: per case, the books, the verdict.
pub mod summary;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookline_contract::chaos::ChaosProfile;
use hookline_contract::chaos::seed::case_seed;
use hookline_contract::dialect::Dialect;
use hookline_contract::{CaseView, DeliveryState, DocumentAccepted, headers};
use serde::Serialize;

pub use summary::{Books, CaseOutcome, Fate, FaultTally, Summary, Verdict};

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
    /// The run's seed (`--seed`); `None`: a random one, printed.
    pub seed: Option<u64>,
}

/// A random run seed below 2^53, so that every JSON reader (JavaScript's,
/// jq's) keeps it exact and it can be pasted back into `--seed`.
pub fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
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

/// One case being followed.
struct Followed {
    index: usize,
    document_id: String,
    seed: u64,
    /// The last view the help desk gave.
    seen: Option<CaseView>,
    /// The help desk said it has no such case (404).
    gone: bool,
}

/// Creates the reviews, then waits for their deliveries; `progress` hears
/// `(stage, done, of)`.
pub async fn run(trigger: &Trigger, mut progress: impl FnMut(&str, usize, usize)) -> Result<Summary, TriggerError> {
    let client = client()?;
    let base = trigger.helpdesk.trim_end_matches('/').to_owned();
    let run_seed = trigger.seed.unwrap_or_else(random_seed);
    let mut summary = Summary::new(
        base.clone(),
        trigger.to.clone(),
        trigger.chaos.as_ref().map(ChaosProfile::to_string),
        run_seed,
    );

    let mut followed = Vec::with_capacity(trigger.count);
    let mut creations = futures_util::stream::iter(0..trigger.count)
        .map(|index| {
            let seed = case_seed(run_seed, u64::try_from(index).unwrap_or(u64::MAX));
            let client = &client;
            let base = base.as_str();
            async move { (index, seed, create(client, base, trigger, index, seed).await) }
        })
        .buffer_unordered(CONCURRENCY);
    let mut done = 0;
    while let Some((index, seed, result)) = creations.next().await {
        done += 1;
        progress("created", done, trigger.count);
        match result {
            Ok(document_id) => followed.push(Followed {
                index,
                document_id,
                seed,
                seen: None,
                gone: false,
            }),
            Err(refusal) => {
                summary.not_created += 1;
                summary.first_refusal.get_or_insert_with(|| refusal.to_string());
            }
        }
    }
    drop(creations);
    if followed.is_empty() && trigger.count > 0 {
        let why = summary.first_refusal.clone().unwrap_or_default();
        return Err(TriggerError::NothingCreated(base, why));
    }

    // Look again at what is still under way until nothing is, or the wait
    // ends. A case the help desk no longer has (404) is not looked at again.
    let deadline = Instant::now() + trigger.wait;
    let mut open: Vec<usize> = (0..followed.len()).collect();
    loop {
        let looked: Vec<(usize, Look)> = futures_util::stream::iter(open.drain(..))
            .map(|k| {
                let id = followed[k].document_id.clone();
                let (client, base) = (&client, base.as_str());
                async move { (k, show(client, base, trigger, &id).await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (k, look) in looked {
            let case = &mut followed[k];
            match look {
                Look::Seen(view) => {
                    let finished = matches!(view.delivery.state, DeliveryState::Delivered | DeliveryState::Dead);
                    case.seen = Some(*view);
                    if !finished {
                        open.push(k);
                    }
                }
                Look::Gone => case.gone = true,
                Look::Unanswered => open.push(k),
            }
        }
        progress("finished", followed.len() - open.len(), followed.len());
        if open.is_empty() || Instant::now() >= deadline {
            break;
        }
        actix_web::rt::time::sleep(POLL).await;
    }
    for case in &followed {
        // Lost: gone, or never shown at all.
        let shown = case.seen.as_ref().filter(|_| !case.gone);
        summary.add(case.index, &case.document_id, case.seed, shown);
    }
    summary.close();
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
async fn create(
    client: &awc::Client,
    base: &str,
    trigger: &Trigger,
    index: usize,
    seed: u64,
) -> Result<String, Refusal> {
    let mut request = client
        .post(format!("{base}/document"))
        .insert_header((headers::CALLBACK_URL, trigger.to.as_str()))
        .insert_header((headers::CHAOS_SEED, seed.to_string()));
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

/// What one `GET /document/{id}` told.
enum Look {
    Seen(Box<CaseView>),
    /// 404: the help desk has no such case (any more).
    Gone,
    /// No answer, or one that is not the case: look again.
    Unanswered,
}

/// `GET /document/{id}`.
async fn show(client: &awc::Client, base: &str, trigger: &Trigger, id: &str) -> Look {
    let request = authorized(client.get(format!("{base}/document/{id}")), trigger.api_key.as_deref());
    let Ok(mut response) = request.send().await else {
        return Look::Unanswered;
    };
    match response.status().as_u16() {
        404 => Look::Gone,
        200 => match response.json::<CaseView>().limit(1024 * 1024).await {
            Ok(case) => Look::Seen(Box::new(case)),
            Err(_) => Look::Unanswered,
        },
        _ => Look::Unanswered,
    }
}
