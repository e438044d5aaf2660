-- The From addresses a board or a school may send as, each with its display name (○○小学校).
-- A broadcast made by staff, an API key or SMTP submission must come from one of its owner's
-- addresses (engine/staff/senders.py). School addresses are not personal data: plain text.
CREATE TABLE organisation_senders (
    organisation_id bigint      NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    address         text        NOT NULL,
    display_name    text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, address)
);
