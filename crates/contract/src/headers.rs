//! Header names used on the wire (lower-case, as HTTP/2 and actix normalise them).

/// Where the help desk must POST the decision (`X-Callback-Url` in the tutorial).
pub const CALLBACK_URL: &str = "x-callback-url";
/// `true` on an answer given again to a retried request (as Stripe's
/// `Idempotent-Replayed`): the consumer's `POST /documents` with an
/// `Idempotency-Key` it has answered, the help desk's `POST /document` with
/// an `id` it has taken.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Standard Webhooks: the message id, identical across retries of one delivery.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks: unix seconds at which this attempt was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks: one or more space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// hookline's help desk: this case's chance of being `ACCEPTED` (0 to 1), in
/// place of its `ACCEPT_RATIO`.
pub const ACCEPT_RATIO: &str = "hookline-accept-ratio";
/// hookline's help desk: this case's chaos profile (see [`crate::chaos`]).
pub const CHAOS: &str = crate::chaos::CHAOS_HEADER;
/// hookline's help desk: the signature dialect of this case's callback
/// (`standard`, `stripe`, `github`, `shopify` or `slack`; see
/// [`crate::dialect`]), in place of Standard Webhooks.
pub const DIALECT: &str = "hookline-dialect";
/// hookline's help desk: the seed (a u64) of this case's chaos draws, so a
/// run can be replayed with the same faults (see [`crate::chaos::seed`]).
pub const CHAOS_SEED: &str = crate::chaos::CHAOS_SEED_HEADER;
