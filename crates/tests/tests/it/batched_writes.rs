//! The consumer's group commit (`consumer::writer`): writes that arrive
//! together share one statement and one commit, each is answered only once
//! committed, and one bad write fails alone.

use consumer::writer::{NewRow, Ticket, WriteError, Writer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::join_all;
use hookline_tests::TestDb;
use uuid::Uuid;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// How many transactions wrote these reviews: a row's `xmin` is the id of
/// the transaction that inserted it.
async fn transactions(db: &TestDb, ids: &[Uuid]) -> i64 {
    let mut conn = db.connect().await;
    diesel::sql_query("SELECT count(DISTINCT xmin::text) AS count FROM document_reviews WHERE id = ANY($1)")
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .count
}

fn row(id: Uuid) -> NewRow {
    NewRow {
        id,
        document_url: format!("https://example.com/{id}.pdf"),
    }
}

#[actix_web::test]
async fn writes_that_arrive_together_share_a_commit_and_a_bad_one_fails_alone() {
    let db = TestDb::create().await;
    consumer::db::run_migrations(&db.url).await.unwrap();
    let pool = consumer::db::pool(&db.url, 4).unwrap();
    let writer = Writer::new(pool, 1, consumer::writer::MAX_BATCH);
    // Warm up (the loops start, a connection opens).
    writer.insert(row(Uuid::now_v7())).await.unwrap();

    let ids: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();
    let written = join_all(ids.iter().map(|id| writer.insert(row(*id)))).await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    let used = transactions(&db, &ids).await;
    eprintln!("300 new reviews in {used} transactions");
    assert!(used <= 3, "300 writes at once took {used} transactions");
    let stored = db.reviews().await;
    assert!(
        ids.iter().all(|id| stored.iter().any(|row| row.id == *id)),
        "every answered write is stored"
    );

    // The same id twice in one batch: the batch fails, then each goes on its
    // own — the first is stored, the second refused, the third unharmed.
    let (twice, other) = (Uuid::now_v7(), Uuid::now_v7());
    let results = join_all([
        writer.insert(row(twice)),
        writer.insert(row(twice)),
        writer.insert(row(other)),
    ])
    .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(WriteError::Failed(_))), "{results:?}");
    assert!(results[2].is_ok(), "{results:?}");

    // Tickets: found ones attached (in one statement), an unknown one alone NotFound.
    let tickets = ids[..50].iter().map(|id| {
        writer.attach(Ticket {
            id: *id,
            agent_id: format!("agent-{id}"),
            document_id: format!("doc-{id}"),
        })
    });
    let unknown = writer.attach(Ticket {
        id: Uuid::now_v7(),
        agent_id: "agent".to_owned(),
        document_id: "doc-unknown".to_owned(),
    });
    let (attached, unknown) = tokio::join!(join_all(tickets), unknown);
    for (id, result) in ids.iter().zip(&attached) {
        let row = result.as_ref().unwrap();
        assert_eq!(row.id, *id);
        assert_eq!(row.document_id.as_deref(), Some(format!("doc-{id}").as_str()));
    }
    assert!(matches!(unknown, Err(WriteError::NotFound)), "{unknown:?}");
    // An attach never overwrites ids a webhook stored first.
    let again = writer
        .attach(Ticket {
            id: ids[0],
            agent_id: "other".to_owned(),
            document_id: "other".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(again.document_id.as_deref(), Some(format!("doc-{}", ids[0]).as_str()));
}

#[actix_web::test]
async fn a_batch_on_a_lost_database_is_answered_unavailable() {
    let db = TestDb::create().await;
    consumer::db::run_migrations(&db.url).await.unwrap();
    let pool = consumer::db::pool(&db.url, 2).unwrap();
    let writer = Writer::new(pool, 1, consumer::writer::MAX_BATCH);
    writer.insert(row(Uuid::now_v7())).await.unwrap();
    db.cut().await;
    let results = join_all((0..20).map(|_| writer.insert(row(Uuid::now_v7())))).await;
    assert!(
        results.iter().all(|r| matches!(r, Err(WriteError::Unavailable(_)))),
        "{results:?}"
    );
    db.restore().await;
    let back = writer.insert(row(Uuid::now_v7())).await;
    assert!(back.is_ok(), "{back:?}");
}
