-- Runners announce they are alive; a runner that stops announcing is gone, and the leases it
-- held are claimed again at once instead of after the lease (5 minutes by default).
CREATE TABLE runners (
    name         text        PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

-- Domains that have accepted mail from us. A resolver answering NXDOMAIN for one of them is
-- a resolver fault, never the guardian's: the delivery is deferred, not failed.
CREATE TABLE mail_domains (
    domain            text        PRIMARY KEY,
    last_delivered_at timestamptz NOT NULL
);

-- Expiry is enforced in the database too: rows that no runner could take before max_age
-- (every lane full, every runner stalled) become failed/expired. Only unsent rows are indexed.
CREATE INDEX deliveries_expiry ON deliveries (expires_at)
    WHERE state IN ('queued', 'deferred', 'sending');
