-- What each (egress source, site) taught the traffic shaper, kept across restarts: the rate
-- and the connection count at which the site last pushed back, and its per-session limit. A
-- runner starts each pair under these lines instead of finding them again by hitting them.
CREATE TABLE shaping_memory (
    source              text             NOT NULL,
    site                text             NOT NULL,
    rate                double precision NOT NULL,
    trouble_rate        double precision,
    trouble_connections integer,
    session_cap         integer,
    updated_at          timestamptz      NOT NULL,
    PRIMARY KEY (source, site)
);

-- Blocks per (runner, source, site) for `mamoru shaping status`: how many, until when the
-- next probe waits, and the reply that showed the latest one (no address in it).
ALTER TABLE shaping_state
    ADD COLUMN blocks        integer NOT NULL DEFAULT 0,
    ADD COLUMN blocked_until timestamptz,
    ADD COLUMN block_reason  text    NOT NULL DEFAULT '',
    ADD COLUMN trouble_rate  double precision;
