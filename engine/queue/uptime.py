"""How long the runners were up: a compact history of their heartbeats (``runner_uptime``).

``liveness.heartbeat`` calls ``extend`` on every beat (every 2 s). A beat that comes within
``GAP`` of the runner's previous one extends that run's row; a later one (the runner was
stopped, or could not reach the database) starts a new row. So a month is a handful of rows
per runner, however often they beat.

``up_intervals`` merges every runner's runs into the periods when at least one runner was up:
the monthly report (engine/staff/monthly_report.py) counts availability from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

# A beat later than this after the previous one starts a new run: the time between is counted
# as "no runner up". Several missed beats (2 s apart) are tolerated, a stopped runner is not.
GAP = timedelta(seconds=15)

EXTEND_SQL = """
WITH extended AS (
    UPDATE runner_uptime SET last_seen = greatest(last_seen, $2::timestamptz)
    WHERE runner = $1 AND last_seen >= $2::timestamptz - $3::interval
    RETURNING 1
)
INSERT INTO runner_uptime (runner, since, last_seen)
SELECT $1, $2::timestamptz, $2::timestamptz WHERE NOT EXISTS (SELECT 1 FROM extended)
ON CONFLICT (runner, since) DO NOTHING
"""

# The runs overlapping [$1, $2), clipped to it and merged across runners (gaps and islands:
# a run starts a new island when it begins after every earlier run has ended).
UP_SQL = """
WITH runs AS (
    SELECT greatest(since, $1) AS s, least(last_seen, $2) AS e
    FROM runner_uptime
    WHERE since < $2 AND last_seen > $1
), ordered AS (
    SELECT s, e, max(e) OVER (ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS ended_before
    FROM runs
), islands AS (
    SELECT s, e, count(*) FILTER (WHERE ended_before IS NULL OR s > ended_before)
                 OVER (ORDER BY s, e) AS island
    FROM ordered
)
SELECT min(s) AS s, max(e) AS e FROM islands GROUP BY island ORDER BY 1
"""


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


async def extend(pool: asyncpg.Pool, runner: str, now: datetime) -> None:
    """One heartbeat of ``runner`` at ``now`` in the history."""
    await pool.execute(EXTEND_SQL, runner, now, GAP)


async def up_intervals(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[Interval]:
    """The periods within [start, end) in which at least one runner was up, in order."""
    return [Interval(r["s"], r["e"]) for r in await pool.fetch(UP_SQL, start, end)]


async def first_beat(pool: asyncpg.Pool) -> datetime | None:
    """When the first heartbeat on record was (the service's start, for availability)."""
    value: datetime | None = await pool.fetchval("SELECT min(since) FROM runner_uptime")
    return value
