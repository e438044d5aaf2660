-- Personal pages (issue 13, part A): reminders that link back to their first broadcast, and
-- the request counts that rate-limit the guardians' pages. Only engine/twoway/ uses them.

-- A reminder is a broadcast of its own (its mails have their own delivery rows, retries and
-- Message-IDs), sent to the recipients of an earlier broadcast who have not confirmed.
CREATE TABLE reminder_broadcasts (
    broadcast_id bigint PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    original_id  bigint      NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL
);
CREATE INDEX reminder_broadcasts_by_original ON reminder_broadcasts (original_id);

-- Each reminder delivery -> the delivery of the first broadcast to the same recipient: the
-- reminder's page link records the read and the answers against the first one.
CREATE TABLE reminder_deliveries (
    delivery_id          bigint PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    original_delivery_id bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE
);

-- Requests to the personal pages per key (a delivery's or contact's link) in fixed windows of
-- one minute: a link opened more often than the limit is answered 429 until the window ends.
CREATE TABLE page_requests (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL
);
