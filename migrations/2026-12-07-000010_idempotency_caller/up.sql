-- An `Idempotency-Key` belongs to its caller, the tenant of its API key
-- (CONSUMER_API_KEYS): two callers who pick the same key make two reviews,
-- and neither sees the other's answer, nor learns by a 422 that the key was
-- taken. Keys stored before were all the one anonymous caller's, the tenant
-- every request to an open consumer belongs to ('default').
ALTER TABLE idempotency_keys ADD COLUMN caller TEXT NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (caller, key);
