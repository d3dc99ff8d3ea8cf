DROP TABLE idempotency_keys;
DROP TABLE webhook_receipts;
