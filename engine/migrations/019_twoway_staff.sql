-- Two-way, the staff side (issue 13 part B): what staff have seen, automatic answers to
-- replies, and the teachers' notification of new reports. Reminders (staff's and the minute
-- task's alike) are tied to the mail they remind of by migration 018's reminder_deliveries.
--
-- Only engine/twoway/ reads or writes these tables (and the two columns added below).

-- When a staff member last marked the report list as seen: the screens' badge counts what
-- arrived or changed after it.
CREATE TABLE report_views (
    staff_id bigint      PRIMARY KEY REFERENCES staff (id),
    seen_at  timestamptz NOT NULL
);

-- The automatic answer to a guardian's reply: at most one per delivery replied to (one per
-- broadcast and address), and the broadcast that carried it, so that a reply to the automatic
-- answer itself is never answered again (RFC 3834 section 2: no loops).
CREATE TABLE reply_answers (
    delivery_id      bigint      PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    answer_broadcast bigint      NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    answered_at      timestamptz NOT NULL
);
CREATE INDEX reply_answers_by_answer ON reply_answers (answer_broadcast);

-- Where a staff member (a class teacher) is told of new reports: sealed like every address.
ALTER TABLE staff ADD COLUMN notify_sealed bytea;

-- Whether the school's class teachers are mailed about new reports, and up to when they were.
ALTER TABLE report_settings
    ADD COLUMN notify_teachers boolean NOT NULL DEFAULT false,
    ADD COLUMN notified_until timestamptz;
