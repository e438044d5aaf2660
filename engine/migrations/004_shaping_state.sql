-- What each runner's traffic shaper is doing, per (egress source, site), published every few
-- seconds so that `mamoru shaping status` can show it from another process.
CREATE TABLE shaping_state (
    runner              text             NOT NULL,
    source              text             NOT NULL,
    site                text             NOT NULL,
    profile             text             NOT NULL,
    rate                double precision NOT NULL,
    ceiling             double precision NOT NULL,
    connections_in_use  integer          NOT NULL,
    connections_allowed integer          NOT NULL,
    suspended_until     timestamptz,
    suspensions         integer          NOT NULL,
    cuts                integer          NOT NULL,
    sent                integer          NOT NULL,
    delivered           integer          NOT NULL,
    deferred            integer          NOT NULL,
    throttled           integer          NOT NULL,
    refused             integer          NOT NULL,
    failed              integer          NOT NULL,
    updated_at          timestamptz      NOT NULL,
    PRIMARY KEY (runner, source, site)
);
