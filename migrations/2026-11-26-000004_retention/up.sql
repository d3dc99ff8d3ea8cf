-- When the help desk answered that it does not know a still-pending review
-- (its case expired, or was lost): the reconciler stops asking about it.
ALTER TABLE document_reviews ADD COLUMN lost_at TIMESTAMPTZ;

-- Pruning by age, in small batches: webhook receipts after
-- RECEIPT_RETENTION, Idempotency-Keys after IDEMPOTENCY_RETENTION. Both
-- tables are written in time order, so a BRIN index (a few pages, almost
-- free to keep up on insert) finds the old rows.
CREATE INDEX webhook_receipts_received_at_idx ON webhook_receipts USING brin (received_at);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys USING brin (created_at);
