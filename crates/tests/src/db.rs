//! A PostgreSQL database per test, created from the admin `DATABASE_URL` and
//! dropped afterwards.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::{env, unique};

/// The rows of `webhook_receipts` and `idempotency_keys`, as tuples of their columns.
type Receipt = (String, uuid::Uuid, String, chrono::DateTime<chrono::Utc>);
type IdempotencyKey = (
    String,
    String,
    Option<i16>,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

/// All the consumer stores, ordered ([`TestDb::snapshot`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub reviews: Vec<consumer::db::ReviewRow>,
    pub receipts: Vec<Receipt>,
    pub idempotency_keys: Vec<IdempotencyKey>,
}

/// A database of its own, dropped when this goes out of scope.
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = env("DATABASE_URL");
        let name = unique("hookline_test");
        let mut admin = AsyncPgConnection::establish(&admin_url).await.unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin_url,
            name,
        }
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }

    /// Makes the database unreachable: no new connections, existing ones cut.
    pub async fn cut(&self) {
        let mut admin = AsyncPgConnection::establish(&self.admin_url).await.unwrap();
        diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }

    /// Undoes [`TestDb::cut`].
    pub async fn restore(&self) {
        let mut admin = AsyncPgConnection::establish(&self.admin_url).await.unwrap();
        diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    /// Every row of the consumer's three tables: compare two snapshots to
    /// prove that a request changed nothing.
    pub async fn snapshot(&self) -> Snapshot {
        use consumer::schema::{idempotency_keys as k, webhook_receipts as r};
        let mut conn = self.connect().await;
        Snapshot {
            reviews: self.reviews().await,
            receipts: r::table
                .select((r::webhook_id, r::review_id, r::document_status, r::received_at))
                .order(r::webhook_id)
                .load(&mut conn)
                .await
                .unwrap(),
            idempotency_keys: k::table
                .select((
                    k::key,
                    k::document_url,
                    k::response_status,
                    k::response_body,
                    k::created_at,
                ))
                .order(k::key)
                .load(&mut conn)
                .await
                .unwrap(),
        }
    }

    /// Every review row, ordered by id: compare two snapshots to prove that
    /// a request changed nothing.
    pub async fn reviews(&self) -> Vec<consumer::db::ReviewRow> {
        use consumer::schema::document_reviews::dsl::*;
        let mut conn = self.connect().await;
        document_reviews
            .select(consumer::db::ReviewRow::as_select())
            .order(id)
            .load(&mut conn)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
