DROP INDEX idempotency_keys_created_at_idx;
DROP INDEX webhook_receipts_received_at_idx;
ALTER TABLE document_reviews DROP COLUMN lost_at;
