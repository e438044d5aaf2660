"""Rate limits of the guardians' personal pages: per link, and forged links per sender.

Every request with a genuine link counts under its link's key (``d:<delivery>`` or
``c:<contact>``) in fixed windows of one minute (table ``page_requests``, migration 018): over
``PAGE_LIMIT`` the page answers 429 until the window ends. A carrier's NAT (or a reverse proxy)
puts thousands of phones behind one address, so genuine requests are never limited per network,
and the link is checked (one HMAC) before anything else. Only links that fail their signature
are counted, under the sender's network and under the link id they claim, with the same
counting, waits and lock as wrong registration codes (engine/people/attempts.py, under keys of
their own): a forged link costs the one who sent it, never the genuine link it imitates nor a
genuine link opened from the same network.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import asyncpg

from engine.people.attempts import TooManyAttempts, check_allowed, network_key, record_failure
from engine.platform.errors import InputError

PAGE_LIMIT = 30
WINDOW = timedelta(minutes=1)
# The id part of a link token (engine/message/links.py): base 36.
_LINK_ID = re.compile(r"[0-9a-z]{1,13}")

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


def forged_keys(client_ip: str, purpose: str, token: str) -> list[str]:
    """The keys a link that failed its signature counts under: the sender's network, and the
    link id the token claims (or its shape when it names none), so neither many forgeries
    from one network nor one link id tried from many networks go on for long."""
    keys = ["page-" + network_key(client_ip)]
    claimed = token.partition(".")[0]
    if _LINK_ID.fullmatch(claimed):
        keys.append(f"page-link:{purpose}:{claimed}")
    else:
        keys.append(f"page-shape:{purpose}:{min(len(token), 200) // 20}")
    return keys


async def refuse_forged(
    pool: asyncpg.Pool, client_ip: str, purpose: str, token: str, now: datetime
) -> None:
    """Count a link that failed its signature; PageBusy while its sender must wait.

    Only ever called for a token that failed: a genuine link is served before any of these
    counts is looked at, so forgeries never block it, whoever sends them."""
    keys = forged_keys(client_ip, purpose, token)
    try:
        await check_allowed(pool, keys, now)
    except TooManyAttempts as exc:
        raise PageBusy(exc.retry_after) from None
    await record_failure(pool, keys, now)
