"""Rate limits of the guardians' personal pages: per link, and forged links per network.

Every request to a page counts under its link's key (``d:<delivery>`` or ``c:<contact>``) in
fixed windows of one minute (table ``page_requests``, migration 018): over ``PAGE_LIMIT`` the
page answers 429 until the window ends. A carrier's NAT puts thousands of phones behind one
address, so genuine requests are not limited per network; links that fail their signature are,
with the same counting, waits and lock as wrong registration codes (engine/people/attempts.py,
under keys of their own), because nobody with a genuine mail sends forged tokens.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from engine.people.attempts import TooManyAttempts, check_allowed, network_key, record_failure
from engine.platform.errors import InputError

PAGE_LIMIT = 30
WINDOW = timedelta(minutes=1)

_COUNT_SQL = """
INSERT INTO page_requests AS p (key, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (key) DO UPDATE
SET hits = CASE WHEN p.window_start <= $2 - $3::interval THEN 1 ELSE p.hits + 1 END,
    window_start = CASE WHEN p.window_start <= $2 - $3::interval THEN $2 ELSE p.window_start END
RETURNING hits, window_start
"""


class PageBusy(InputError):
    """Too many requests: answered 429 with ``Retry-After``."""

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        seconds = max(1, int(retry_after.total_seconds()))
        super().__init__(
            f"アクセスが続いたため、しばらく受け付けません。{seconds} 秒ほど待ってから開き直して"
            f"ください。 (too many requests: try again in {seconds} s)"
        )


async def count_request(
    pool: asyncpg.Pool, key: str, now: datetime, limit: int = PAGE_LIMIT,
    window: timedelta = WINDOW,
) -> None:
    """Count one request under ``key``; PageBusy when it is over ``limit`` in the window."""
    row = await pool.fetchrow(_COUNT_SQL, key, now, window)
    assert row is not None
    if row["hits"] > limit:
        raise PageBusy(row["window_start"] + window - now)


async def hits(
    pool: asyncpg.Pool, key: str, now: datetime, window: timedelta = WINDOW
) -> int:
    """Requests counted under ``key`` in its current window (0 when it has ended)."""
    found: int | None = await pool.fetchval(
        "SELECT hits FROM page_requests WHERE key = $1 "
        "AND window_start > $2::timestamptz - $3::interval",
        key, now, window,
    )
    return found or 0


async def prune(pool: asyncpg.Pool, now: datetime, keep: timedelta = timedelta(days=1)) -> int:
    """Forget request counts whose window ended long ago (serve's minute task calls it)."""
    result: str = await pool.execute(
        "DELETE FROM page_requests WHERE window_start < $1", now - keep
    )
    return int(result.split()[-1])


def _keys(client_ip: str) -> list[str]:
    return ["page-" + network_key(client_ip)]


async def check_network(pool: asyncpg.Pool, client_ip: str, now: datetime) -> None:
    """PageBusy while the client's network must wait after forged links."""
    try:
        await check_allowed(pool, _keys(client_ip), now)
    except TooManyAttempts as exc:
        raise PageBusy(exc.retry_after) from None


async def record_forged(pool: asyncpg.Pool, client_ip: str, now: datetime) -> None:
    """Count a link that failed its signature against the client's network."""
    await record_failure(pool, _keys(client_ip), now)
