//! A request's body must arrive within a deadline ([`BodyDeadline`],
//! `REQUEST_BODY_TIMEOUT`), or the answer is `408` and the connection is
//! closed.
//!
//! actix-web cuts a client that is slow to send its *headers*
//! (`client_request_timeout`, 5 s), but nothing bounds reading the *body*:
//! `Content-Length: 1000` and then one byte every ten seconds, or none, kept
//! a connection and a handler waiting for as long as the client liked.
//! [`enforce`], a middleware of every app ([`crate::app::app`]), wraps the
//! request's payload in a stream that fails once the deadline (counted from
//! when the headers were read) has passed, whatever reads it: the strict
//! JSON bodies, the raw bytes the webhook receivers verify, anything a route
//! adds later. The route's own error for that failure is then replaced by
//! the `408` with `Connection: close`.
//!
//! A body that was not read to its end keeps its payload alive until the
//! answer is written, so actix closes the connection after it instead of
//! draining the rest (which it would do for a chunked body, at the
//! client's pace).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{InternalError, PayloadError};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpResponse};
use futures_util::Stream;
use hookline_contract::ErrorBody;
use tokio::time::Sleep;

/// `REQUEST_BODY_TIMEOUT`'s default: a body of the largest size either
/// service reads (64 KiB) takes well under a second on any real link.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request's body may take to arrive, counted from its headers
/// (app data; [`DEFAULT_BODY_TIMEOUT`] when none is registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub Duration);

impl Default for BodyDeadline {
    fn default() -> Self {
        Self(DEFAULT_BODY_TIMEOUT)
    }
}

/// How far reading a body got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Reading,
    Done,
    Late,
}

/// The request's payload, failing once its deadline has passed.
struct Deadlined {
    payload: Rc<RefCell<Payload>>,
    progress: Rc<Cell<Progress>>,
    deadline: Pin<Box<Sleep>>,
}

impl Stream for Deadlined {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.progress.get() != Progress::Reading {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut *self.payload.borrow_mut()).poll_next(cx);
        match next {
            Poll::Ready(None) => {
                self.progress.set(Progress::Done);
                Poll::Ready(None)
            }
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(chunk)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.progress.set(Progress::Late);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// What keeps an unread body's payload alive until the answer is written
/// (a response extension; see the module docs).
struct Unread {
    _payload: Rc<RefCell<Payload>>,
}

/// The middleware: see the module docs.
pub async fn enforce(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = request.app_data::<BodyDeadline>().copied().unwrap_or_default().0;
    let payload = request.take_payload();
    if matches!(payload, Payload::None) {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let payload = Rc::new(RefCell::new(payload));
    let progress = Rc::new(Cell::new(Progress::Reading));
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(Deadlined {
        payload: payload.clone(),
        progress: progress.clone(),
        deadline: Box::pin(tokio::time::sleep(limit)),
    });
    request.set_payload(Payload::from(stream));
    let outcome = next.call(request).await;
    match progress.get() {
        Progress::Late => {
            tracing::info!(
                limit = %humantime::format_duration(limit),
                "request refused: its body did not arrive in time"
            );
            match outcome {
                Ok(response) => Ok(response.into_response(too_late(limit))),
                Err(e) => Err(InternalError::from_response(e, too_late(limit)).into()),
            }
        }
        Progress::Reading => {
            let mut response = outcome?.map_into_boxed_body();
            response
                .response_mut()
                .extensions_mut()
                .insert(Unread { _payload: payload });
            Ok(response)
        }
        Progress::Done => Ok(outcome?.map_into_boxed_body()),
    }
}

/// `408` with the JSON envelope, closing the connection.
fn too_late(limit: Duration) -> HttpResponse {
    let body = ErrorBody::new("request_timeout").with_detail(format!(
        "the request body did not arrive within {} (REQUEST_BODY_TIMEOUT)",
        humantime::format_duration(limit)
    ));
    HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
        .force_close()
        .json(body)
}
