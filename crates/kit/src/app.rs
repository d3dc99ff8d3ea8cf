//! The application both services build on: the same middleware, in the same
//! order, and the same answer to an unknown route.
//!
//! Order matters, and actix runs the middleware registered last first:
//! [`request_id::propagate`] gives every request its id before the
//! [`TracingLogger`] opens the request's span with it; [`track`] times the
//! request inside that span and counts it by route; [`host::guard`] refuses
//! a request for a host the service does not answer to (only where the app
//! registers `AllowedHosts`), counted and logged like any other;
//! [`json_errors`] turns actix's own bare errors (404, 405, 413...) into
//! the JSON envelope before they are counted and logged;
//! [`deadline::enforce`], the innermost, holds every request body to
//! `REQUEST_BODY_TIMEOUT` (408).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;

use crate::http::{json_errors, not_found};
use crate::metrics::{HttpMetrics, track};
use crate::request_id::{self, RequestSpan};
use crate::{deadline, host};

/// A new `App` with the shared middleware and the JSON 404; add the
/// service's own app data and routes to it.
pub fn app(
    http_metrics: web::Data<HttpMetrics>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(from_fn(deadline::enforce))
        .wrap(json_errors())
        .wrap(from_fn(host::guard))
        .wrap(from_fn(track))
        .wrap(TracingLogger::<RequestSpan>::new())
        .wrap(from_fn(request_id::propagate))
        .app_data(http_metrics)
        .default_service(web::to(not_found))
}
