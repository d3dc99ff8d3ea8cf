-- A subscription's `document.received`: notes when the help desk took the
-- document, on the review found as decide.sql finds it (by document id $2,
-- or by the id we sent, $4, if the event overtook the help desk's answer).
-- It never touches document_status, so a late `document.received` cannot
-- undo a decision; the first time noted ($1) stands. $3 is the agent id.
UPDATE document_reviews r
SET received_at = COALESCE(r.received_at, $1),
    document_id = COALESCE(r.document_id, $2),
    agent_id = COALESCE(r.agent_id, $3)
WHERE r.id = COALESCE((SELECT id FROM document_reviews WHERE document_id = $2), $4)
  AND (r.document_id = $2 OR r.document_id IS NULL)
RETURNING r.id, r.document_url, r.agent_id, r.document_id, r.document_status, r.created_at, r.updated_at,
          r.received_at
