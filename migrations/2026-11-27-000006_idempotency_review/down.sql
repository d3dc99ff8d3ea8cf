ALTER TABLE idempotency_keys DROP COLUMN review_id;
