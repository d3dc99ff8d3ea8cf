-- The consumer's subscription at the help desk (HELPDESK_SUBSCRIBE=true):
-- its id and its signing secret, which the help desk shows in full only when
-- it creates or rotates it, so it must outlive a restart. One row per URL
-- the consumer subscribed (in practice one: {CONSUMER_PUBLIC_URL}/helpdesk/events).
CREATE TABLE helpdesk_subscription (
    -- The help desk's id (`sub_...`).
    id         TEXT PRIMARY KEY,
    url        TEXT        NOT NULL UNIQUE,
    -- `whsec_...`, as the help desk handed it out.
    secret     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- When the help desk took the document for review (its `document.received`
-- event); NULL without a subscription, or until that event arrives.
ALTER TABLE document_reviews ADD COLUMN received_at TIMESTAMPTZ;
