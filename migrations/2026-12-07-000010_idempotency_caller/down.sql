-- Back to one key space: only the anonymous caller's keys fit it (another
-- caller's could collide); the others are forgotten, and a retry with one
-- of them is a new request.
DELETE FROM idempotency_keys WHERE caller <> 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (key);
ALTER TABLE idempotency_keys DROP COLUMN caller;
