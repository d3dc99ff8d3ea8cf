//! Deadlines on our own servers: slow bodies, idle and too many event streams.
//!
//! Finding 4 of issue 23: `Content-Length: 1000` and then a few bytes (or
//! none) to the consumer's `POST /documents` or `POST /document/update` held
//! the connection open with no answer for as long as the client liked;
//! actix cuts slow *headers*, but nothing bounded reading the *body*. Now
//! every body arrives within `REQUEST_BODY_TIMEOUT` or the answer is `408`
//! and the connection is closed, on both services; the dashboard's event
//! streams are capped (`EVENTS_MAX_STREAMS`, `503` past it), each ends
//! after `EVENTS_MAX_AGE`, and one whose client stopped reading is cut after
//! `SEND_TIMEOUT`.

use std::time::Duration;

use hookline_tests::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body deadline of these tests: short, the attack does not need long.
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a test waits for what must happen (an answer, a close): far
/// past the deadlines under test, so only a missing defence reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// How a slow body is framed.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length: 1000`, and 16 of those bytes.
    Length,
    /// `Transfer-Encoding: chunked`, and one chunk of 16 bytes.
    Chunked,
}

/// The slow-body attack on `base` + `path`: the headers of a POST with a
/// JSON body, the start of that body, then nothing. Returns what the server
/// answered by the time it closed the connection; panics if it neither
/// answered nor closed within [`PATIENCE`].
async fn slow_body(base: &str, path: &str, framing: Framing) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let start = r#"{"documentUrl": "#;
    let body = match framing {
        Framing::Length => format!("Content-Length: 1000\r\n\r\n{start}"),
        Framing::Chunked => format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{start}\r\n", start.len()),
    };
    let head = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{body}");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // read_to_end returns only once the server has closed the connection.
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    match read {
        Ok(read) => read.unwrap(),
        Err(_) => panic!("{path} ({framing:?}): not closed within {PATIENCE:?} of a stalled body, answered {answer:?}"),
    };
    answer
}

fn assert_timed_out(path: &str, answer: &str) {
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{path}: a stalled body should be answered 408, got {answer:?}"
    );
    assert!(
        answer.contains(r#""error":"request_timeout""#),
        "{path}: the 408 should carry the JSON envelope, got {answer:?}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{path}: the 408 should say the connection is closed, got {answer:?}"
    );
}

#[actix_web::test]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed_on_both_services() {
    let stack = Stack::start_with(
        |hd| hd.guards.request_body_timeout = BODY_TIMEOUT,
        |c| c.guards.request_body_timeout = BODY_TIMEOUT,
    )
    .await;
    for framing in [Framing::Length, Framing::Chunked] {
        for (base, path) in [
            (&stack.consumer.url, "/documents"),
            (&stack.consumer.url, "/document/update"),
            (&stack.helpdesk.url, "/document"),
        ] {
            let answer = slow_body(base, path, framing).await;
            assert_timed_out(&format!("{path} ({framing:?})"), &answer);
        }
    }
    // The services still answer everyone else.
    let review = stack.request_review("https://example.com/after-the-attack.pdf").await;
    assert_eq!(review.document_url, "https://example.com/after-the-attack.pdf");
}

/// `GET /events` on `base`: the response, its headers read, its body not yet.
async fn open_stream(base: &str) -> awc::ClientResponse {
    awc::Client::builder()
        .timeout(PATIENCE)
        .finish()
        .get(format!("{base}/events"))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn event_streams_past_the_cap_are_refused_with_503_until_one_ends() {
    let stack = Stack::start_with(|_| {}, |c| c.events_max_streams = 2).await;
    let base = &stack.consumer.url;
    let first = open_stream(base).await;
    let second = open_stream(base).await;
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);

    let mut third = open_stream(base).await;
    assert_eq!(third.status(), 503, "a third stream past EVENTS_MAX_STREAMS=2");
    let retry_after = third
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()),
        "the 503 says when to retry, in seconds: {retry_after:?}"
    );
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"], "too_many_streams", "{body}");

    drop(first);
    hookline_tests::wait_for(PATIENCE, "a stream's slot to be given back", || async {
        (open_stream(base).await.status() == 200).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn an_event_stream_ends_at_its_max_age_and_gives_its_slot_back() {
    let stack = Stack::start_with(
        |_| {},
        |c| {
            c.events_max_streams = 1;
            c.events_max_age = Duration::from_millis(500);
        },
    )
    .await;
    let base = &stack.consumer.url;
    let mut stream = open_stream(base).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(open_stream(base).await.status(), 503, "the one slot is taken");
    // The body ends (the terminating chunk) only when the server ends the stream.
    tokio::time::timeout(PATIENCE, stream.body().limit(1 << 20))
        .await
        .unwrap_or_else(|_| panic!("an event stream still open {PATIENCE:?} after EVENTS_MAX_AGE=500ms"))
        .unwrap();
    hookline_tests::wait_for(PATIENCE, "the ended stream's slot to be given back", || async {
        (open_stream(base).await.status() == 200).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn an_event_stream_whose_client_stopped_reading_is_cut_and_its_slot_given_back() {
    let stack = Stack::start_with(
        |_| {},
        |c| {
            c.events_max_streams = 1;
            c.guards.send_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let base = &stack.consumer.url;
    // A client that opens the one stream, with a small receive window, and never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut stalled = socket
        .connect(base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: consumer\r\n\r\n")
        .await
        .unwrap();
    hookline_tests::wait_for(PATIENCE, "the stalled client's stream to take the one slot", || async {
        (open_stream(base).await.status() == 503).then_some(())
    })
    .await;
    // Reviews are events on every stream: they fill what the client does
    // not read, until the server can send no more and SEND_TIMEOUT ends it.
    let mut sent = 0;
    hookline_tests::wait_for(Duration::from_secs(90), "the stalled stream to be cut", || {
        sent += 1;
        let document = format!("https://example.com/stalled-{sent}.pdf");
        async move {
            for i in 0..10 {
                let (status, body) = hookline_tests::post_review(base, &format!("{document}?{i}")).await;
                assert_eq!(status, 201, "{body}");
            }
            (open_stream(base).await.status() == 200).then_some(())
        }
    })
    .await;
    drop(stalled);
}
