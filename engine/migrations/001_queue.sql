-- The queue: broadcasts, one delivery row per recipient, and the log of every attempt.
--
-- A delivery is "due" when its state is queued or deferred and next_attempt_at has come.
-- While a runner holds it (state sending) next_attempt_at is the end of its lease, so a row
-- whose runner died becomes due again by the same rule: one index serves both the claim of new
-- work and the recovery of stale leases.

CREATE TABLE broadcasts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender           text        NOT NULL,
    subject          text        NOT NULL,
    body             text        NOT NULL,
    priority         smallint    NOT NULL CHECK (priority BETWEEN 0 AND 2),
    send_at          timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    recipient_count  integer     NOT NULL,
    suppressed_count integer     NOT NULL DEFAULT 0
);

CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broadcast_id    bigint      NOT NULL REFERENCES broadcasts (id),
    recipient       text        NOT NULL,
    domain          text        NOT NULL,
    -- 0 emergency, 1 normal, 2 bulk: copied from the broadcast so the claim needs no join.
    priority        smallint    NOT NULL,
    state           text        NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'deferred', 'delivered', 'failed')),
    next_attempt_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    lease_owner     text,
    attempts        integer     NOT NULL DEFAULT 0,
    last_code       integer,
    last_status     text,
    last_text       text,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (broadcast_id, recipient)
);

-- Per-broadcast reports use the unique (broadcast_id, recipient) index; no other index is
-- kept, because every index slows the fan-out of a 30,000-recipient broadcast.
CREATE INDEX deliveries_due ON deliveries (priority, next_attempt_at, id)
    WHERE state IN ('queued', 'deferred', 'sending');

CREATE TABLE delivery_attempts (
    delivery_id  bigint      NOT NULL,
    attempted_at timestamptz NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'failed')),
    code         integer,
    status       text,
    text         text,
    host         text,
    runner       text
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id);

-- Values mamoru keeps for itself, such as the VERP signing key when none is configured.
CREATE TABLE mamoru_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);
