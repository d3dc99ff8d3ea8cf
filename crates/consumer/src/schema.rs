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
        lost_at -> Nullable<Timestamptz>,
        received_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    helpdesk_subscription (id) {
        id -> Text,
        url -> Text,
        secret -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (caller, key) {
        key -> Text,
        document_url -> Text,
        response_status -> Nullable<Int2>,
        response_body -> Nullable<Text>,
        created_at -> Timestamptz,
        review_id -> Nullable<Uuid>,
        caller -> Text,
    }
}

diesel::table! {
    webhook_receipts (webhook_id) {
        webhook_id -> Text,
        review_id -> Uuid,
        document_status -> Text,
        received_at -> Timestamptz,
    }
}

diesel::joinable!(webhook_receipts -> document_reviews (review_id));

diesel::allow_tables_to_appear_in_same_query!(
    document_reviews,
    helpdesk_subscription,
    idempotency_keys,
    webhook_receipts,
);
