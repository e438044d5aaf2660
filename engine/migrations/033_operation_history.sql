-- Operation history for the monthly report (issue 23): how long runners were up, and when
-- sites blocked or suspended an egress address. The live tables (runners, shaping_state) hold
-- only the present; these keep the past, compactly.

-- One row per uninterrupted run of a runner's heartbeats: a beat within a few seconds of the
-- previous one extends the row, a later one starts a new row (engine/queue/uptime.py). A month
-- of one runner beating every 2 s is one row (a few more after restarts), not 1.3 million.
CREATE TABLE runner_uptime (
    runner    text        NOT NULL,
    since     timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (runner, since)
);
CREATE INDEX runner_uptime_by_last_seen ON runner_uptime (last_seen);

-- Blocks and suspensions a site imposed, as the runners' shaping snapshots showed them
-- (engine/delivery/shaping_state.py): one row per snapshot in which a counter grew, with how
-- much it grew. No address is stored; the reason is the site's reply text of the latest block.
CREATE TABLE shaping_events (
    at          timestamptz NOT NULL,
    runner      text        NOT NULL,
    source      text        NOT NULL,
    site        text        NOT NULL,
    blocks      integer     NOT NULL,
    suspensions integer     NOT NULL,
    reason      text        NOT NULL DEFAULT ''
);
CREATE INDEX shaping_events_by_at ON shaping_events (at);
