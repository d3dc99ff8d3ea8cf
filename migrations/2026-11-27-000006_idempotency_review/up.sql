-- The review an `Idempotency-Key`'s request made (or was about to make):
-- fixed when the key is claimed, so a retry after the first request died
-- mid-way resumes that review instead of making a second one.
ALTER TABLE idempotency_keys ADD COLUMN review_id UUID;
