ALTER TABLE document_reviews DROP COLUMN received_at;
DROP TABLE helpdesk_subscription;
