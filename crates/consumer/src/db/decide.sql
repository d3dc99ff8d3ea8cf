-- The help desk's decision, applied in one statement (why it is correct
-- under concurrency: decision.rs). A name in braces is a bind parameter.
WITH seen AS (
    -- This webhook-id was applied before.
    SELECT 1 FROM webhook_receipts WHERE webhook_id = {webhook_id}
), target AS (
    -- Else the review, locked: by document id, or by the id we sent if the
    -- webhook overtook the help desk's answer. Two unique-index probes. A
    -- review found by the id we sent may be bound to another document: it
    -- is returned (to say so) and left as it is (below).
    SELECT id, document_url, agent_id, document_id, document_status, created_at, updated_at, received_at
    FROM document_reviews
    WHERE id = COALESCE((SELECT id FROM document_reviews WHERE document_id = {document_id}), {request_id})
      AND NOT EXISTS (SELECT 1 FROM seen)
    LIMIT 1
    FOR UPDATE
), applied AS (
    -- Moved only out of PENDING_REVIEW, and bound to one document only
    -- once: a decision about another document than the one bound is not
    -- applied (checked on the row locked above, so a ticket attached
    -- meanwhile counts).
    UPDATE document_reviews r
    SET document_status = {decision}, updated_at = CURRENT_TIMESTAMP,
        document_id = {document_id}, agent_id = COALESCE(r.agent_id, {agent_id})
    FROM target t
    WHERE r.id = t.id AND t.document_status = {pending}
      AND (r.document_id IS NULL OR r.document_id = {document_id})
    RETURNING r.id, r.document_url, r.agent_id, r.document_id, r.document_status, r.created_at, r.updated_at,
              r.received_at
), receipt AS (
    -- Recorded with the change, in the same statement.
    INSERT INTO webhook_receipts (webhook_id, review_id, document_status)
    SELECT {webhook_id}::text, id, document_status FROM applied WHERE {webhook_id}::text IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM seen), o.applied,
       o.id, o.document_url, o.agent_id, o.document_id, o.document_status, o.created_at, o.updated_at,
       o.received_at
FROM (VALUES (1)) AS one (x)
LEFT JOIN (
    SELECT true AS applied, * FROM applied
    UNION ALL
    SELECT false, * FROM target WHERE NOT EXISTS (SELECT 1 FROM applied)
) AS o ON true
