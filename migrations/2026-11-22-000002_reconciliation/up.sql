-- When the reconciler last asked the help desk about a still-pending review.
ALTER TABLE document_reviews ADD COLUMN checked_at TIMESTAMPTZ;

-- The reconciler's scan: pending reviews, oldest first. Partial, so it stays
-- as small as the backlog of undecided reviews.
CREATE INDEX document_reviews_pending_idx ON document_reviews (created_at)
    WHERE document_status = 'PENDING_REVIEW';
