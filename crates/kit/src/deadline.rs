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
//! A body that was not read to its end (late, or refused before it was
//! read) keeps its payload alive until the answer is written, so actix
//! closes the connection after it instead of draining the rest, which it
//! would do for a chunked body, at the client's pace.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
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

/// An answer's body that holds the request's unread payload until it has
/// been written: actix decides whether to close or to drain the rest when
/// the answer's body ends, and closes only while the payload is alive.
struct HoldingPayload {
    body: BoxBody,
    _payload: Rc<RefCell<Payload>>,
}

impl MessageBody for HoldingPayload {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
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
            let late = keep_unread(too_late(limit), payload);
            match outcome {
                Ok(response) => Ok(response.into_response(late)),
                Err(e) => Err(InternalError::from_response(e, late).into()),
            }
        }
        Progress::Reading => {
            let (request, response) = outcome?.into_parts();
            Ok(ServiceResponse::new(
                request,
                keep_unread(response.map_into_boxed_body(), payload),
            ))
        }
        Progress::Done => Ok(outcome?.map_into_boxed_body()),
    }
}

/// `response`, holding the unread `payload` until it is written.
fn keep_unread(response: HttpResponse, payload: Rc<RefCell<Payload>>) -> HttpResponse {
    response.map_body(|_, body| {
        BoxBody::new(HoldingPayload {
            body,
            _payload: payload,
        })
    })
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
