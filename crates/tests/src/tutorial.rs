//! Stand-ins for the original tutorial's two programs
//! (nickabb/async-flows-and-webhooks), answering on the wire exactly as its
//! code does, so our services are tested against what they must interoperate
//! with, not against our own idea of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Running;

/// The tutorial's help desk (`external/start/routes.ts` and
/// `document-subscriber.ts`): `POST /document` answers **200**
/// `{"agentId", "documentId"}` (no `status`), or 400 `{"message"}` without
/// `X-Callback-Url`; after `delay` it POSTs, **unsigned**, `{"id",
/// "agentId", "documentId", "documentStatus"}` to the callback, with `id`
/// exactly as it was sent (absent if it was). It has no
/// `GET /document/{id}`: that is a 404.
pub struct TutorialHelpDesk {
    pub url: String,
    /// `GET` requests it answered 404 to.
    pub gets: Arc<AtomicUsize>,
    _server: Running,
}

impl TutorialHelpDesk {
    /// `calls_back`: false for a help desk whose callbacks never arrive.
    pub async fn start(delay: Duration, calls_back: bool) -> Self {
        let gets = Arc::new(AtomicUsize::new(0));
        let counted = gets.clone();
        let server = Running::serve(move || {
            let counted = counted.clone();
            App::new()
                .route(
                    "/document",
                    web::post().to(move |request: HttpRequest, body: web::Json<Value>| async move {
                        let Some(callback) = request
                            .headers()
                            .get("x-callback-url")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                        else {
                            return HttpResponse::BadRequest()
                                .json(json!({"message": "Missing X-Callback-Url - is it spelled correctly?"}));
                        };
                        let (agent_id, document_id) =
                            (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
                        if calls_back {
                            let mut webhook = json!({
                                "agentId": agent_id,
                                "documentId": document_id,
                                "documentStatus": if rand::random_bool(0.7) { "ACCEPTED" } else { "DECLINED" },
                            });
                            if let Some(id) = body.get("id") {
                                webhook["id"] = id.clone();
                            }
                            actix_web::rt::spawn(async move {
                                actix_web::rt::time::sleep(delay).await;
                                let _ = awc::Client::default().post(callback).send_json(&webhook).await;
                            });
                        }
                        HttpResponse::Ok().json(json!({"agentId": agent_id, "documentId": document_id}))
                    }),
                )
                .default_service(web::to(move || {
                    let counted = counted.clone();
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        HttpResponse::NotFound().body("Cannot GET")
                    }
                }))
        });
        Self {
            url: server.url.clone(),
            gets,
            _server: server,
        }
    }
}

/// The tutorial's consumer (`api/start/routes.ts`): asks for a review with
/// `{"documentUrl"}` only and `X-Callback-Url: <its url>/document/update`,
/// keeps `agentId` and `documentId` from the answer, and takes any webhook
/// at `POST /document/update` without checking a signature, answering 200.
pub struct TutorialConsumer {
    pub url: String,
    /// The webhook bodies it received.
    pub webhooks: mpsc::UnboundedReceiver<(Value, Vec<(String, String)>)>,
    _server: Running,
}

impl TutorialConsumer {
    pub async fn start() -> Self {
        let (tx, webhooks) = mpsc::unbounded_channel();
        let server = Running::serve(move || {
            let tx = tx.clone();
            App::new().route(
                "/document/update",
                web::post().to(move |request: HttpRequest, body: web::Json<Value>| {
                    let tx = tx.clone();
                    async move {
                        let headers = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                            .collect();
                        let _ = tx.send((body.into_inner(), headers));
                        HttpResponse::Ok().finish()
                    }
                }),
            )
        });
        Self {
            url: server.url.clone(),
            webhooks,
            _server: server,
        }
    }

    /// `GET /` of the tutorial's consumer: one review request to `helpdesk`;
    /// the status and body of the help desk's answer.
    pub async fn request_review(&self, helpdesk: &str) -> (u16, Value) {
        let mut response = awc::Client::default()
            .post(format!("{helpdesk}/document"))
            .insert_header(("X-Callback-Url", format!("{}/document/update", self.url)))
            .send_json(&json!({"documentUrl": "https://boot.dev/community"}))
            .await
            .unwrap();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (response.status().as_u16(), body)
    }
}
