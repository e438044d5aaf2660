-- Health: when a site's current run of blocks began (shaping_state, published by the runners),
-- and the last result of each periodic check (the audit chain's daily verification, backups),
-- so that /readyz can answer from any process (engine/delivery/health.py).
ALTER TABLE shaping_state ADD COLUMN blocked_since timestamptz;

CREATE TABLE service_status (
    name   text        PRIMARY KEY,
    ok     boolean     NOT NULL,
    at     timestamptz NOT NULL,
    detail text        NOT NULL DEFAULT ''
);
