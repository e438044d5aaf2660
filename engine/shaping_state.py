"""The shaper's live state, published for operators: written by each runner, read by the CLI.

The throttle itself knows nothing of the database; the runner hands its snapshot here every
few seconds and when it stops. ``mamoru shaping status`` reads the table from any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from engine.throttle import SiteState

PUBLISH_SQL = """
INSERT INTO shaping_state AS s (
    runner, source, site, profile, rate, ceiling, connections_in_use, connections_allowed,
    suspended_until, suspensions, cuts, sent, delivered, deferred, throttled, refused, failed,
    updated_at
)
SELECT $1, u.* , $17 FROM unnest(
    $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::int[], $8::int[],
    $9::timestamptz[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[], $15::int[],
    $16::int[], $18::int[]
) AS u
ON CONFLICT (runner, source, site) DO UPDATE SET
    profile = EXCLUDED.profile, rate = EXCLUDED.rate, ceiling = EXCLUDED.ceiling,
    connections_in_use = EXCLUDED.connections_in_use,
    connections_allowed = EXCLUDED.connections_allowed,
    suspended_until = EXCLUDED.suspended_until, suspensions = EXCLUDED.suspensions,
    cuts = EXCLUDED.cuts, sent = EXCLUDED.sent, delivered = EXCLUDED.delivered,
    deferred = EXCLUDED.deferred, throttled = EXCLUDED.throttled, refused = EXCLUDED.refused,
    failed = EXCLUDED.failed, updated_at = EXCLUDED.updated_at
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
    failed = [s.failed for s in states]
    await pool.execute(PUBLISH_SQL, runner, *cols, now, failed)


async def read(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every published (runner, source, site), busiest sites first."""
    rows = await pool.fetch(
        "SELECT * FROM shaping_state ORDER BY site, source, runner"
    )
    return [dict(r.items()) for r in rows]
