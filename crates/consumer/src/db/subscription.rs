//! The consumer's subscription at the help desk, as its database keeps it,
//! and the `document.received` events it brings.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::ReviewRow;
use crate::schema::helpdesk_subscription;

/// The key of the advisory lock that serialises subscription set-up between
/// consumers sharing a database (`"hookline-subscription"` as a number), so
/// two of them starting at once find one subscription instead of making two.
const SETUP_LOCK: i64 = 0x686f_6f6b_7375_6273;

/// A subscription whose secret we hold.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = helpdesk_subscription, check_for_backend(diesel::pg::Pg))]
pub struct StoredSubscription {
    pub id: String,
    pub url: String,
    /// `whsec_...`.
    pub secret: String,
}

/// Waits for, then holds, the set-up lock until the session ends: `conn`
/// must be closed afterwards, never go back to the pool.
pub async fn lock_subscription_setup(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(SETUP_LOCK)
        .execute(conn)
        .await
        .map(drop)
}

/// The subscription we hold for `url`, if any.
pub async fn find_subscription(conn: &mut AsyncPgConnection, url: &str) -> QueryResult<Option<StoredSubscription>> {
    helpdesk_subscription::table
        .filter(helpdesk_subscription::url.eq(url))
        .select(StoredSubscription::as_select())
        .first(conn)
        .await
        .optional()
}

/// Keeps `subscription` as the one for its URL, replacing any other, in one
/// transaction.
pub async fn save_subscription(conn: &mut AsyncPgConnection, subscription: &StoredSubscription) -> QueryResult<()> {
    use helpdesk_subscription::dsl as s;
    conn.transaction(async |conn| {
        diesel::delete(s::helpdesk_subscription.filter(s::url.eq(&subscription.url).and(s::id.ne(&subscription.id))))
            .execute(conn)
            .await?;
        insert_subscription(conn, subscription).await
    })
    .await
}

async fn insert_subscription(conn: &mut AsyncPgConnection, subscription: &StoredSubscription) -> QueryResult<()> {
    use helpdesk_subscription::dsl as s;
    diesel::insert_into(s::helpdesk_subscription)
        .values((
            s::id.eq(&subscription.id),
            s::url.eq(&subscription.url),
            s::secret.eq(&subscription.secret),
        ))
        .on_conflict(s::id)
        .do_update()
        .set((
            s::url.eq(&subscription.url),
            s::secret.eq(&subscription.secret),
            s::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The help desk's `document.received` for one of our documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingReceipt<'a> {
    pub document_id: &'a str,
    pub agent_id: &'a str,
    /// The `id` the help desk echoed (our review id), if it parses as one.
    pub request_id: Option<Uuid>,
    /// When the help desk took the document (the event's `timestamp`).
    pub at: DateTime<Utc>,
}

/// Notes `received_at` on the review (`received.sql`); `None` when no
/// review matches. The status is never touched.
pub async fn record_received(
    conn: &mut AsyncPgConnection,
    incoming: IncomingReceipt<'_>,
) -> QueryResult<Option<ReviewRow>> {
    diesel::sql_query(include_str!("received.sql"))
        .bind::<Timestamptz, _>(incoming.at)
        .bind::<Text, _>(incoming.document_id)
        .bind::<Text, _>(incoming.agent_id)
        .bind::<Nullable<SqlUuid>, _>(incoming.request_id)
        .get_result(conn)
        .await
        .optional()
}
