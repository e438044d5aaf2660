-- Bounces, the suppression list and mail to service addresses (issue 5).
--
-- Addresses are stored as the queue stores recipients (engine.address.normalise_address: local
-- part as given, domain in lower case), so the fan-out matches them with plain equality.

-- Addresses no broadcast is sent to. One row per address; the first reason wins until an
-- operator removes the row.
CREATE TABLE suppressions (
    address     text        PRIMARY KEY,
    reason      text        NOT NULL,
    category    text        NOT NULL,
    source      text        NOT NULL
                CHECK (source IN ('bounce', 'smtp', 'complaint', 'operator', 'import')),
    delivery_id bigint,
    note        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per verdict of a mail received at a VERP address, or one unclassified row
-- (classified = false) when the mail yields none, for a person to read.
CREATE TABLE bounces (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    mail_from   text        NOT NULL,
    rcpt        text        NOT NULL,
    -- No foreign key: deliveries may be purged while their bounces are kept.
    delivery_id bigint,
    kind        text        NOT NULL,
    recipient   text,
    reason      text,
    category    text,
    hard        boolean     NOT NULL DEFAULT false,
    reply_code  integer,
    status      text,
    action      text,
    diagnostic  text,
    classified  boolean     NOT NULL,
    -- The first 256 KB of the mail as received.
    raw         bytea       NOT NULL
);
CREATE INDEX bounces_by_delivery ON bounces (delivery_id);
CREATE INDEX bounces_by_time ON bounces (received_at);

-- Mail to the service addresses (registration, replies), kept for the features that read it.
CREATE TABLE inbound_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    mail_from   text        NOT NULL,
    rcpt        text        NOT NULL,
    size        integer     NOT NULL,
    raw         bytea       NOT NULL
);

-- Final soft failures that count toward suppression (engine/suppression.py says which). One
-- row per (address, delivery): a DSN that repeats the runner's own failure counts once.
CREATE TABLE soft_failures (
    address     text        NOT NULL,
    delivery_id bigint      NOT NULL,
    reason      text        NOT NULL,
    category    text        NOT NULL,
    failed_at   timestamptz NOT NULL,
    PRIMARY KEY (address, delivery_id)
);
CREATE INDEX soft_failures_by_time ON soft_failures (failed_at);
