//! One trace per review (issue 26): the consumer's `POST /documents`, its
//! call to the help desk, the help desk's `POST /document`, every delivery
//! attempt (retries too) and the consumer's receipt of each are spans of one
//! trace, exported over OTLP/HTTP JSON to a collector that is this test's
//! own server; with no collector set, a `traceparent` travels only where a
//! request brought one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_contract::{DocumentStatus, headers};
use hookline_kit::trace::TraceContext;
use hookline_tests::redis::TestRedis;
use hookline_tests::{
    Receiver, Running, Stack, call, closed_port, helpdesk_settings, metric_sum, start_helpdesk, wait_for,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// One span as the collector got it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace: String,
    id: String,
    parent: Option<String>,
    name: String,
    kind: i64,
    /// 0 unset, 1 ok, 2 error.
    status: i64,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP collector: keeps every span POSTed to `/v1/traces`.
struct Collector {
    server: Running,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = web::Data::new(spans.clone());
        let server = Running::serve(move || {
            actix_web::App::new()
                .app_data(kept.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/v1/traces", web::post().to(collect))
        });
        Self { server, spans }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

async fn collect(request: HttpRequest, body: web::Bytes, kept: web::Data<Arc<Mutex<Vec<Span>>>>) -> HttpResponse {
    assert_eq!(
        request.headers().get("content-type").unwrap(),
        "application/json",
        "OTLP/HTTP JSON"
    );
    let export: Value = serde_json::from_slice(&body).unwrap();
    let mut spans = kept.lock().unwrap();
    for resource in export["resourceSpans"].as_array().unwrap() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "service.name")
            .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
            .unwrap();
        for scope in resource["scopeSpans"].as_array().unwrap() {
            assert_eq!(scope["scope"]["name"], "hookline");
            for span in scope["spans"].as_array().unwrap() {
                let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
                let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
                assert!(start > 1_600_000_000_000_000_000 && end >= start, "{span}");
                let attributes = span["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        let value = &a["value"];
                        let value = value["stringValue"].as_str().or(value["intValue"].as_str()).unwrap();
                        (a["key"].as_str().unwrap().to_owned(), value.to_owned())
                    })
                    .collect();
                spans.push(Span {
                    service: service.clone(),
                    trace: span["traceId"].as_str().unwrap().to_owned(),
                    id: span["spanId"].as_str().unwrap().to_owned(),
                    parent: span["parentSpanId"].as_str().map(str::to_owned),
                    name: span["name"].as_str().unwrap().to_owned(),
                    kind: span["kind"].as_i64().unwrap(),
                    status: span["status"]["code"].as_i64().unwrap_or(0),
                    attributes,
                });
            }
        }
    }
    HttpResponse::Ok().json(json!({}))
}

/// Between the help desk and the consumer's `/document/update`: passes each
/// callback on as it came (its `traceparent` too), except that the first
/// one's signature is spoilt, so the consumer refuses it (401) and the help
/// desk retries.
struct Spoiler {
    server: Running,
    consumer: Arc<OnceLock<String>>,
}

impl Spoiler {
    fn start() -> Self {
        let consumer = Arc::new(OnceLock::new());
        let seen = Arc::new(AtomicUsize::new(0));
        let target = consumer.clone();
        let server = Running::serve(move || {
            let (target, seen) = (target.clone(), seen.clone());
            actix_web::App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let (target, seen) = (target.clone(), seen.clone());
                async move {
                    let url = format!("{}{}", target.get().unwrap(), request.uri().path());
                    let mut forward = awc::Client::default().post(url);
                    for (name, value) in request.headers() {
                        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                            forward = forward.insert_header((name.clone(), value.clone()));
                        }
                    }
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        forward = forward.insert_header((headers::WEBHOOK_SIGNATURE, "v1,c3BvaWx0"));
                    }
                    let mut answer = forward.send_body(body).await.unwrap();
                    let bytes = answer.body().await.unwrap();
                    HttpResponse::build(answer.status())
                        .content_type("application/json")
                        .body(bytes)
                }
            }))
        });
        Self { server, consumer }
    }
}

/// The spans of `trace`.
fn of_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|span| span.trace == trace).collect()
}

/// Whether `span` descends from `ancestor` within `spans`.
fn descends(spans: &[&Span], span: &Span, ancestor: &Span) -> bool {
    let mut at = span;
    for _ in 0..spans.len() {
        let Some(parent) = &at.parent else { return false };
        if parent == &ancestor.id {
            return true;
        }
        match spans.iter().find(|s| &s.id == parent) {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

#[actix_web::test]
async fn one_review_is_one_trace_across_both_services_retries_included() {
    let collector = Collector::start();
    let spoiler = Spoiler::start();
    let otlp: url::Url = collector.server.url.parse().unwrap();
    let public: url::Url = spoiler.server.url.parse().unwrap();
    let stack = Stack::start_with(
        |helpdesk| {
            helpdesk.trace.otlp_endpoint = Some(otlp.clone());
            helpdesk.accept_ratio = 1.0;
        },
        |consumer| {
            consumer.trace.otlp_endpoint = Some(otlp.clone());
            consumer.public_url = Some(public);
        },
    )
    .await;
    spoiler.consumer.set(stack.consumer.url.clone()).unwrap();

    let review = stack.request_review("https://example.com/traced.pdf").await;
    let document_id = review.document_id.clone().unwrap();
    wait_for(DEADLINE, "the review decided", || async {
        (stack.review(&review.id.to_string()).await.document_status == DocumentStatus::Accepted).then_some(())
    })
    .await;
    let case = stack.case(&document_id).await;
    assert_eq!(
        case.delivery.attempts, 2,
        "the spoilt first attempt was retried: {case:?}"
    );
    let webhook_id = case.delivery.webhook_id.clone();

    // Spans arrive within the exporter's interval (a second).
    let (spans, trace) = wait_for(DEADLINE, "the review's spans", || async {
        let spans = collector.spans();
        let attempts: Vec<&Span> = spans
            .iter()
            .filter(|s| s.name == "webhook attempt" && s.attributes["hookline.document_id"] == document_id)
            .collect();
        let receipts = spans
            .iter()
            .filter(|s| {
                s.name == "POST /document/update" && s.attributes.get("hookline.webhook_id") == Some(&webhook_id)
            })
            .count();
        let trace = attempts.first()?.trace.clone();
        (attempts.len() >= 2 && receipts >= 2).then_some((spans, trace))
    })
    .await;
    let ours = of_trace(&spans, &trace);
    // The case names its trace, to look it up by.
    assert_eq!(case.trace_id.as_deref(), Some(trace.as_str()), "{case:?}");

    // Every span of the review is in that one trace.
    for span in spans.iter().filter(|s| {
        s.attributes.get("hookline.document_id") == Some(&document_id)
            || s.attributes.get("hookline.webhook_id") == Some(&webhook_id)
    }) {
        assert_eq!(span.trace, trace, "{span:?}");
    }
    let services: std::collections::BTreeSet<&str> = ours.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["hookline-consumer", "hookline-helpdesk"],
        "spans from both services"
    );

    // The consumer's POST /documents is the root, and the only one.
    let roots: Vec<&&Span> = ours.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    let root = roots[0];
    assert_eq!(
        (root.service.as_str(), root.name.as_str(), root.kind),
        ("hookline-consumer", "POST /documents", 2)
    );
    assert_eq!(root.attributes["http.response.status_code"], "201");
    for span in ours.iter().filter(|s| s.parent.is_some()) {
        assert!(descends(&ours, span, root), "every span hangs from the root: {span:?}");
    }
    let call = ours
        .iter()
        .find(|s| s.service == "hookline-consumer" && s.name == "POST /document")
        .unwrap();
    assert_eq!(
        (call.kind, call.parent.as_ref()),
        (3, Some(&root.id)),
        "the client span of the call"
    );
    let accepted = ours
        .iter()
        .find(|s| s.service == "hookline-helpdesk" && s.name == "POST /document")
        .unwrap();
    assert_eq!(accepted.kind, 2);
    assert_eq!(
        accepted.parent.as_ref(),
        Some(&call.id),
        "the help desk continues the call's span"
    );

    // Two attempts, each the parent of one consumer receipt; the first
    // refused (a bad signature: an error on both sides), the retry taken.
    let mut attempts: Vec<&&Span> = ours.iter().filter(|s| s.name == "webhook attempt").collect();
    attempts.sort_by_key(|s| s.attributes["hookline.attempt"].clone());
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for (attempt, (number, status, code)) in attempts.iter().zip([("1", "401", 2), ("2", "200", 1)]) {
        assert_eq!(attempt.service, "hookline-helpdesk");
        assert_eq!(attempt.kind, 3);
        assert_eq!(attempt.parent.as_ref(), Some(&accepted.id), "{attempt:?}");
        assert_eq!(attempt.attributes["hookline.attempt"], number);
        assert_eq!(attempt.attributes["http.response.status_code"], status);
        assert_eq!(attempt.attributes["hookline.webhook_id"], webhook_id);
        assert_eq!(attempt.status, code, "{attempt:?}");
        let receipts: Vec<&&Span> = ours.iter().filter(|s| s.parent.as_ref() == Some(&attempt.id)).collect();
        assert_eq!(receipts.len(), 1, "one receipt under attempt {number}: {receipts:?}");
        let receipt = receipts[0];
        assert_eq!(
            (receipt.service.as_str(), receipt.name.as_str(), receipt.kind),
            ("hookline-consumer", "POST /document/update", 2)
        );
        assert_eq!(receipt.attributes["http.response.status_code"], status);
        assert_eq!(receipt.status, code, "{receipt:?}");
    }

    // Another review is another trace.
    let second = stack.request_review("https://example.com/other.pdf").await;
    let second_id = second.document_id.clone().unwrap();
    let other = wait_for(DEADLINE, "the second review's attempt span", || async {
        collector
            .spans()
            .into_iter()
            .find(|s| s.name == "webhook attempt" && s.attributes["hookline.document_id"] == second_id)
            .map(|s| s.trace)
    })
    .await;
    assert_ne!(other, trace);

    // Each service counts the spans its collector took, and none lost.
    for running in [&stack.helpdesk, &stack.consumer] {
        let exported = metric_sum(&running.url, "hookline_trace_spans_total{outcome=\"exported\"}").await;
        assert!(exported >= 3, "{}: {exported} spans exported", running.url);
        for lost in ["failed", "dropped"] {
            let prefix = format!("hookline_trace_spans_total{{outcome=\"{lost}\"}}");
            assert_eq!(metric_sum(&running.url, &prefix).await, 0, "{}: {lost}", running.url);
        }
    }
}

#[actix_web::test]
async fn a_collector_that_is_down_loses_its_spans_counted_and_delays_nothing() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.trace.otlp_endpoint = Some(format!("http://127.0.0.1:{}", closed_port()).parse().unwrap());
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;
    let (status, _, body) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[(headers::CALLBACK_URL, &receiver.url)],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // Delivered as ever, with the trace the help desk started.
    let got = receiver.next(DEADLINE).await;
    assert!(got.headers.contains_key("traceparent"), "{got:?}");
    // The request's and the attempt's spans, lost with the export (within
    // a second's batch and the connection refused), and counted.
    wait_for(DEADLINE, "the lost spans counted", || async {
        let failed = metric_sum(&helpdesk.url, "hookline_trace_spans_total{outcome=\"failed\"}").await;
        (failed >= 2).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn without_a_collector_a_callback_carries_a_traceparent_only_when_the_request_had_one() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;
    let document = json!({"documentUrl": "https://example.com/a.pdf"});
    let url = format!("{}/document", helpdesk.url);

    let (status, _, body) = call("POST", &url, &[(headers::CALLBACK_URL, &receiver.url)], Some(&document)).await;
    assert_eq!(status, 202, "{body}");
    let plain = receiver.next(DEADLINE).await;
    assert_eq!(
        plain.headers.get("traceparent"),
        None,
        "nothing new on the wire: {plain:?}"
    );

    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _, body) = call(
        "POST",
        &url,
        &[(headers::CALLBACK_URL, &receiver.url), ("traceparent", incoming)],
        Some(&document),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let traced = receiver.next(DEADLINE).await;
    let carried = TraceContext::parse(&traced.headers["traceparent"]).unwrap();
    let incoming = TraceContext::parse(incoming).unwrap();
    assert_eq!(carried.trace_id, incoming.trace_id, "the caller's trace goes on");
    assert_ne!(carried.span_id, incoming.span_id, "under a span of the help desk's");

    // One that does not parse is ignored: no trace, no error.
    let (status, _, body) = call(
        "POST",
        &url,
        &[(headers::CALLBACK_URL, &receiver.url), ("traceparent", "00-nonsense")],
        Some(&document),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let ignored = receiver.next(DEADLINE).await;
    assert_eq!(ignored.headers.get("traceparent"), None, "{ignored:?}");

    // A case's subscription events carry its trace too.
    let mut events = Receiver::start(200).await;
    let (status, _, body) = call(
        "POST",
        &format!("{}/webhooks", helpdesk.url),
        &[],
        Some(&json!({"url": events.url, "events": ["document.received"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (status, _, body) = call("POST", &url, &[("traceparent", traceparent)], Some(&document)).await;
    assert_eq!(status, 202, "{body}");
    let event = events.next(DEADLINE).await;
    assert_eq!(event.body["type"], "document.received", "{event:?}");
    let carried = TraceContext::parse(&event.headers["traceparent"]).unwrap();
    assert_eq!(carried.trace_hex(), "0af7651916cd43dd8448eb211c80319c");
}
