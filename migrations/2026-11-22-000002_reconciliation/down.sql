DROP INDEX document_reviews_pending_idx;
ALTER TABLE document_reviews DROP COLUMN checked_at;
