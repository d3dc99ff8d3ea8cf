-- One row per review the consumer asked the help desk for.
CREATE TABLE document_reviews (
    -- Chosen by the consumer (UUIDv7, time-ordered) before it calls the help
    -- desk, and sent along as the request's `id`: a webhook that beats the
    -- help desk's answer is matched by the `id` it echoes.
    id              UUID PRIMARY KEY,
    document_url    TEXT        NOT NULL,
    -- NULL only until the help desk has answered the request.
    agent_id        TEXT,
    document_id     TEXT,
    document_status TEXT        NOT NULL DEFAULT 'PENDING_REVIEW'
        CHECK (document_status IN ('PENDING_REVIEW', 'ACCEPTED', 'DECLINED')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Webhooks look reviews up by the help desk's document id.
CREATE UNIQUE INDEX document_reviews_document_id_key ON document_reviews (document_id);
-- GET /documents pages newest first.
CREATE INDEX document_reviews_created_at_idx ON document_reviews (created_at DESC, id DESC);
