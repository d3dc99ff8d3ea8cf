// @generated automatically by Diesel CLI.

diesel::table! {
    document_reviews (id) {
        id -> Uuid,
        document_url -> Text,
        agent_id -> Nullable<Text>,
        document_id -> Nullable<Text>,
        document_status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        checked_at -> Nullable<Timestamptz>,
    }
}
