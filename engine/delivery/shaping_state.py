"""The shaper's state in the database: its live snapshot for operators, and what it learned.

The throttle itself knows nothing of the database; the runner hands its snapshot here every
few seconds and when it stops. ``mamoru shaping status`` reads the table from any process.
What each (egress source, site) learned (``engine.throttle.Learned``: the rate and connection
count at which the site pushed back, its per-session limit) is saved in ``shaping_memory`` with
the snapshot and loaded when a runner starts, so a restart begins under those lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from engine.delivery._upkeep import STALE_SECONDS
from engine.throttle import Learned, SiteState

# The snapshot is written, and every (source, site) whose block or suspension counter grew
# since this runner's previous snapshot is added to the history (shaping_events) for the
# monthly report: both in one statement, the history reading the rows as they were before.
# A runner's counters start at zero under its own name (host:pid), so growth is never lost
# to a restart.
PUBLISH_SQL = """
WITH u AS (
    SELECT * FROM unnest(
        $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::int[], $8::int[],
        $9::timestamptz[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[],
        $15::int[], $16::int[], $18::int[], $19::int[], $20::timestamptz[], $21::text[],
        $22::float8[], $23::timestamptz[]
    ) AS u (source, site, profile, rate, ceiling, connections_in_use, connections_allowed,
            suspended_until, suspensions, cuts, sent, delivered, deferred, throttled, refused,
            failed, blocks, blocked_until, block_reason, trouble_rate, blocked_since)
), history AS (
    INSERT INTO shaping_events (at, runner, source, site, blocks, suspensions, reason)
    SELECT $17, $1, u.source, u.site,
           greatest(u.blocks - coalesce(o.blocks, 0), 0),
           greatest(u.suspensions - coalesce(o.suspensions, 0), 0), u.block_reason
    FROM u LEFT JOIN shaping_state o
        ON o.runner = $1 AND o.source = u.source AND o.site = u.site
    WHERE u.blocks > coalesce(o.blocks, 0) OR u.suspensions > coalesce(o.suspensions, 0)
)
INSERT INTO shaping_state AS s (
    runner, source, site, profile, rate, ceiling, connections_in_use, connections_allowed,
    suspended_until, suspensions, cuts, sent, delivered, deferred, throttled, refused, failed,
    blocks, blocked_until, block_reason, trouble_rate, blocked_since, updated_at
)
SELECT $1, u.source, u.site, u.profile, u.rate, u.ceiling, u.connections_in_use,
       u.connections_allowed, u.suspended_until, u.suspensions, u.cuts, u.sent, u.delivered,
       u.deferred, u.throttled, u.refused, u.failed, u.blocks, u.blocked_until, u.block_reason,
       u.trouble_rate, u.blocked_since, $17
FROM u
ON CONFLICT (runner, source, site) DO UPDATE SET
    profile = EXCLUDED.profile, rate = EXCLUDED.rate, ceiling = EXCLUDED.ceiling,
    connections_in_use = EXCLUDED.connections_in_use,
    connections_allowed = EXCLUDED.connections_allowed,
    suspended_until = EXCLUDED.suspended_until, suspensions = EXCLUDED.suspensions,
    cuts = EXCLUDED.cuts, sent = EXCLUDED.sent, delivered = EXCLUDED.delivered,
    deferred = EXCLUDED.deferred, throttled = EXCLUDED.throttled, refused = EXCLUDED.refused,
    failed = EXCLUDED.failed, blocks = EXCLUDED.blocks,
    blocked_until = EXCLUDED.blocked_until, block_reason = EXCLUDED.block_reason,
    trouble_rate = EXCLUDED.trouble_rate, blocked_since = EXCLUDED.blocked_since,
    updated_at = EXCLUDED.updated_at
"""

SAVE_LEARNED_SQL = """
INSERT INTO shaping_memory AS m (
    source, site, rate, trouble_rate, trouble_connections, session_cap, updated_at
)
SELECT u.*, $7 FROM unnest(
    $1::text[], $2::text[], $3::float8[], $4::float8[], $5::int[], $6::int[]
) AS u
ON CONFLICT (source, site) DO UPDATE SET
    rate = EXCLUDED.rate, trouble_rate = EXCLUDED.trouble_rate,
    trouble_connections = EXCLUDED.trouble_connections, session_cap = EXCLUDED.session_cap,
    updated_at = EXCLUDED.updated_at
"""

_COLUMNS = (
    "source", "site", "profile", "rate", "ceiling", "connections_in_use",
    "connections_allowed", "suspended_until", "suspensions", "cuts", "sent", "delivered",
    "deferred", "throttled", "refused",
)


async def publish(
    pool: asyncpg.Pool, runner: str, states: Sequence[SiteState], now: datetime
) -> None:
    """Write this runner's snapshot in one statement."""
    if not states:
        return
    cols: list[list[Any]] = [[getattr(s, c) for s in states] for c in _COLUMNS]
    extra: list[list[Any]] = [
        [getattr(s, c) for s in states]
        for c in (
            "failed", "blocks", "blocked_until", "block_reason", "trouble_rate", "blocked_since"
        )
    ]
    await pool.execute(PUBLISH_SQL, runner, *cols, now, *extra)


async def save_learned(
    pool: asyncpg.Pool, learned: Mapping[tuple[str, str], Learned], now: datetime
) -> None:
    """Keep what the shaper learned, per (source, site), in one statement."""
    if not learned:
        return
    keys = list(learned)
    values = [learned[k] for k in keys]
    await pool.execute(
        SAVE_LEARNED_SQL,
        [k[0] for k in keys], [k[1] for k in keys], [v.rate for v in values],
        [v.trouble_rate for v in values], [v.trouble_connections for v in values],
        [v.session_cap for v in values], now,
    )


async def load_learned(
    pool: asyncpg.Pool, sources: Sequence[str]
) -> dict[tuple[str, str], Learned]:
    """What earlier runs learned for these egress sources (each source belongs to one runner)."""
    rows = await pool.fetch(
        "SELECT source, site, rate, trouble_rate, trouble_connections, session_cap "
        "FROM shaping_memory WHERE source = ANY($1::text[])",
        list(sources),
    )
    return {
        (r["source"], r["site"]): Learned(
            r["rate"], r["trouble_rate"], r["trouble_connections"], r["session_cap"]
        )
        for r in rows
    }


async def read(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every published (runner, source, site), busiest sites first."""
    rows = await pool.fetch(
        "SELECT * FROM shaping_state ORDER BY site, source, runner"
    )
    return [dict(r.items()) for r in rows]


async def blocks(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every (runner, source, site) a site has blocked since its runner started, latest first."""
    rows = await pool.fetch(
        "SELECT runner, source, site, blocks, blocked_until, block_reason, updated_at "
        "FROM shaping_state WHERE blocks > 0 ORDER BY updated_at DESC, site, source"
    )
    return [dict(r.items()) for r in rows]


@dataclass(frozen=True)
class CarrierState:
    """One site now, over every live runner and egress source: blocked (a source is refused
    until ``until``), suspended (no new connection until ``until``), or neither."""

    site: str
    profile: str
    blocked: bool
    suspended: bool
    until: datetime | None
    reason: str

    @property
    def label_ja(self) -> str:
        return "ブロック中" if self.blocked else "一時停止中" if self.suspended else "問題なし"


async def carriers_now(pool: asyncpg.Pool, now: datetime) -> list[CarrierState]:
    """Each site of the live runners' snapshots (those refreshed lately, as /readyz counts
    them), the blocked first, then the suspended, then by name."""
    rows = await pool.fetch(
        "SELECT site, min(profile) AS profile, "
        "max(blocked_until) FILTER (WHERE blocked_until > $1) AS blocked_until, "
        "max(suspended_until) FILTER (WHERE suspended_until > $1) AS suspended_until, "
        "min(block_reason) FILTER (WHERE blocked_until > $1) AS reason "
        "FROM shaping_state WHERE updated_at > $2 GROUP BY site",
        now, now - timedelta(seconds=4 * STALE_SECONDS),
    )
    found = [
        CarrierState(
            r["site"], r["profile"], r["blocked_until"] is not None,
            r["suspended_until"] is not None, r["blocked_until"] or r["suspended_until"],
            r["reason"] or "",
        )
        for r in rows
    ]
    return sorted(found, key=lambda c: (not c.blocked, not c.suspended, c.site))
