-- Every webhook-id whose decision was applied, written in the same
-- transaction as the status change: a redelivered webhook is recognised and
-- acknowledged without touching the review again.
CREATE TABLE webhook_receipts (
    webhook_id      TEXT PRIMARY KEY,
    review_id       UUID        NOT NULL REFERENCES document_reviews (id) ON DELETE CASCADE,
    document_status TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_receipts_review_id_idx ON webhook_receipts (review_id);

-- `Idempotency-Key` of POST /documents: a retried request gets the first
-- response and the help desk is asked only once.
CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    -- What the key was first used for: the same key with another body is refused.
    document_url    TEXT        NOT NULL,
    -- NULL while the first request is still in progress.
    response_status SMALLINT,
    response_body   TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
