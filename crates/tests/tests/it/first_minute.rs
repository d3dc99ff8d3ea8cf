//! The first minute: a service just started, before any traffic, answers
//! every GET route its OpenAPI document lists with a status the document
//! lists for that route, the documented content type, and a body the
//! documented schema accepts; the help desk does so again once retention
//! has emptied its store. (Prometheus's first scrape of a new help desk was
//! once a 500, until an endpoint existed: no test had scraped a fresh
//! service.) The routes are read from the running service's own
//! `/openapi.json`, so a new route is walked without touching this file.

use std::time::Duration;

use hookline_tests::{Receiver, Stack, TestDb, TestRedis, consumer_settings, start_consumer, wait_for};
use serde_json::{Value, json};

const KEY: &str = "hookline-first-minute-key-0123456789";

/// A value for a path parameter that names nothing yet: a new UUID where
/// the schema says so, the documented example if there is one, else a
/// made-up word.
fn fresh_value(parameter: &Value) -> String {
    if parameter.pointer("/schema/format").and_then(Value::as_str) == Some("uuid") {
        return uuid::Uuid::new_v4().to_string();
    }
    if let Some(example) = parameter.get("example").and_then(Value::as_str) {
        return example.to_owned();
    }
    format!("fresh-{}", uuid::Uuid::new_v4().simple())
}

/// Whether `body` is what `content_type` promises (the schema, for JSON);
/// the problem if not.
fn check_body(document: &Value, media: &Value, content_type: &str, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    match content_type {
        "application/json" => {
            let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {text}"))?;
            let Some(schema) = media.get("schema") else {
                return Ok(());
            };
            // The schema's `$ref`s point into the document's components.
            let mut root = schema.clone();
            if let (Some(object), Some(components)) = (root.as_object_mut(), document.get("components")) {
                object.insert("components".to_owned(), components.clone());
            }
            let validator = jsonschema::validator_for(&root).map_err(|e| format!("bad schema: {e}"))?;
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(format!("{errors:?} in {value}"))
            }
        }
        "text/plain" => {
            // The Prometheus text format: comments, and `series value` lines.
            let bad: Vec<&str> = text
                .lines()
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .filter(|line| {
                    line.rsplit_once(' ')
                        .is_none_or(|(_, value)| value.parse::<f64>().is_err())
                })
                .collect();
            if text.contains("# TYPE") && bad.is_empty() {
                Ok(())
            } else {
                Err(format!("not the Prometheus text format: {bad:?} in {text}"))
            }
        }
        "text/html" if text.to_ascii_lowercase().contains("<html") => Ok(()),
        "text/html" => Err(format!("not a page: {text}")),
        // A stream (`text/event-stream`): its status and type are the answer.
        _ => Ok(()),
    }
}

/// Walks every documented GET route of the service at `base`, sending
/// `key` to the routes that name a security scheme; the problems found.
async fn walk_documented_gets(base: &str, key: Option<&str>) -> Vec<String> {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut response = client.get(format!("{base}/openapi.json")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{base}/openapi.json");
    let document: Value = response.json().limit(4 << 20).await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut problems = Vec::new();
    let mut walked = 0;
    for (template, operations) in paths {
        let Some(get) = operations.get("get") else { continue };
        walked += 1;
        let mut path = template.clone();
        for parameter in get["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "path" {
                let name = parameter["name"].as_str().unwrap();
                path = path.replace(&format!("{{{name}}}"), &fresh_value(parameter));
            }
        }
        let mut request = client.get(format!("{base}{path}"));
        if let (Some(key), Some(_)) = (key, get.get("security")) {
            request = request.insert_header(("authorization", format!("Bearer {key}")));
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                problems.push(format!("GET {path}: no answer: {e}"));
                continue;
            }
        };
        let status = response.status().as_u16();
        let Some(documented) = get["responses"].get(status.to_string()) else {
            problems.push(format!("GET {path}: {status}, which {template} does not document"));
            continue;
        };
        if status >= 500 {
            problems.push(format!("GET {path}: {status} from a healthy service"));
            continue;
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let Some(media) = documented["content"].get(&content_type) else {
            problems.push(format!(
                "GET {path}: {status} as {content_type:?}, not a documented type"
            ));
            continue;
        };
        if content_type == "text/event-stream" {
            continue; // endless: its head is the answer
        }
        let body = response.body().limit(4 << 20).await.unwrap();
        if let Err(problem) = check_body(&document, media, &content_type, &body) {
            problems.push(format!("GET {path}: {status}: {problem}"));
        }
    }
    assert!(walked >= 7, "only {walked} GET routes documented at {base}");
    problems
}

#[actix_web::test]
async fn every_documented_get_route_of_a_fresh_help_desk_answers_as_documented() {
    let redis = TestRedis::default();
    let mut settings = hookline_tests::helpdesk_settings(&redis);
    settings.api_keys = KEY.parse().unwrap();
    let helpdesk = hookline_tests::start_helpdesk(settings).await;
    let problems = walk_documented_gets(&helpdesk.url, Some(KEY)).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[actix_web::test]
async fn every_documented_get_route_of_a_fresh_consumer_answers_as_documented() {
    let db = TestDb::create().await;
    // A help desk that is not there: the consumer's own routes must not need it.
    let settings = consumer_settings(&db, &format!("http://127.0.0.1:{}", hookline_tests::closed_port()));
    let consumer = start_consumer(settings).await;
    let problems = walk_documented_gets(&consumer.url, None).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[actix_web::test]
async fn a_help_desk_whose_store_retention_has_emptied_answers_every_documented_get_route() {
    let mut receiver = Receiver::start(200).await;
    let stack = Stack::start(|hd| {
        hd.api_keys = KEY.parse().unwrap();
        hd.case_retention = Duration::from_secs(1);
    })
    .await;
    // One case, delivered, then forgotten with its endpoint.
    let client = awc::Client::default();
    let mut answer = client
        .post(format!("{}/document", stack.helpdesk.url))
        .insert_header(("authorization", format!("Bearer {KEY}")))
        .insert_header((hookline_contract::headers::CALLBACK_URL, receiver.url.as_str()))
        .send_json(&json!({"documentUrl": "https://example.com/a.pdf"}))
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202, "{:?}", answer.body().await);
    let listing = |path: &'static str| {
        let url = format!("{}{path}", stack.helpdesk.url);
        async move {
            let mut response = awc::Client::default()
                .get(url)
                .insert_header(("authorization", format!("Bearer {KEY}")))
                .send()
                .await
                .ok()?;
            let body: Value = response.json().await.ok()?;
            body["total"].as_u64()
        }
    };
    tokio::time::timeout(Duration::from_secs(20), receiver.received.recv())
        .await
        .expect("the case delivered within 20 s");
    wait_for(
        Duration::from_secs(20),
        "retention to forget every case and endpoint",
        || async { (listing("/cases").await == Some(0) && listing("/endpoints").await == Some(0)).then_some(()) },
    )
    .await;
    let problems = walk_documented_gets(&stack.helpdesk.url, Some(KEY)).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_body_check_refuses_what_the_documented_schema_does_not_accept() {
    let document = json!({"components": {"schemas": {"Health": {
        "type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}
    }}}});
    let media = json!({"schema": {"$ref": "#/components/schemas/Health"}});
    assert!(check_body(&document, &media, "application/json", br#"{"status":"ok"}"#).is_ok());
    let refused = check_body(&document, &media, "application/json", br#"{"status":1}"#).unwrap_err();
    assert!(refused.contains("/status"), "{refused}");
    assert!(check_body(&document, &media, "application/json", b"{}").is_err());
    assert!(check_body(&document, &media, "text/plain", b"# TYPE x counter\nx one\n").is_err());
}
