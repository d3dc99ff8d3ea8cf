//! `crates/consumer/src/schema.rs` must describe what the migrations build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consumer::schema::document_reviews;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use hookline_tests::TestDb;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[actix_web::test]
async fn schema_rs_names_the_columns_the_migrations_create_in_order() {
    let db = TestDb::create().await;
    consumer::db::run_migrations(&db.url).await.unwrap();
    let mut conn = db.connect().await;

    let migrated: Vec<String> = diesel::sql_query(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'document_reviews' ORDER BY ordinal_position",
    )
    .load::<Column>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.column_name)
    .collect();

    let select =
        diesel::debug_query::<diesel::pg::Pg, _>(&document_reviews::table.select(document_reviews::all_columns))
            .to_string();
    let declared: Vec<String> = select
        .trim_start_matches("SELECT ")
        .split(" FROM")
        .next()
        .unwrap()
        .split(", ")
        .map(|c| {
            c.trim_start_matches("\"document_reviews\".")
                .trim_matches('"')
                .to_owned()
        })
        .collect();
    assert_eq!(declared, migrated, "regenerate schema.rs with `diesel print-schema`");

    // The types line up too: a typed round trip through every column.
    let id = uuid::Uuid::now_v7();
    consumer::db::insert_requested(&mut conn, id, "https://example.com/a.pdf")
        .await
        .unwrap();
    let row = consumer::db::find(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(row.id, id);
    assert_eq!(row.agent_id, None);
}
