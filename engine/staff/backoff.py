"""Back-off of sign-in attempts per (login, source), so nobody can lock a colleague out.

Every wrong password or code (and every attempt for a login that does not exist, or is
disabled) is counted under the login as typed and the source it came from: the client's IPv4
address, or its IPv6 /64 (one host usually has a whole /64). From the ``[staff] max_failures``-th
failure in a row on, each makes that source wait before its next try for that login:
``FIRST_DELAY``, doubling up to ``[staff] lockout_time``. A success from the source, or an
administrator's password reset, clears the count. Failures from one source never delay any
other source, so five requests from anywhere can no longer lock an account.

While a source waits, its attempts are refused with the same answer as a wrong password (the
caller cannot tell a held-back login from an unknown one) and are not counted again.

The rows stay bounded: a row whose last failure is older than ``QUIET_TIME`` is dropped when
the next failure is written, and one source keeps at most ``MAX_PER_SOURCE`` rows (its oldest
go first), so a flood of made-up logins from one address cannot grow the table without end;
the whole table keeps at most ``MAX_ROWS`` (the oldest go first) against a flood from many.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

import asyncpg

FIRST_DELAY = timedelta(seconds=30)
QUIET_TIME = timedelta(hours=24)
MAX_PER_SOURCE = 200
MAX_ROWS = 100_000

FAILURE_SQL = """
INSERT INTO staff_login_failures AS f (login, source, failures, last_at)
VALUES ($1, $2, 1, $3)
ON CONFLICT (login, source) DO UPDATE
SET failures = CASE WHEN f.last_at < $3 - $4::interval THEN 1 ELSE f.failures + 1 END,
    last_at = $3
RETURNING failures
"""

TRIM_ALL_SQL = """
DELETE FROM staff_login_failures WHERE (login, source) IN (
    SELECT login, source FROM staff_login_failures ORDER BY last_at DESC OFFSET $1
)
"""

TRIM_SOURCE_SQL = """
DELETE FROM staff_login_failures WHERE (login, source) IN (
    SELECT login, source FROM staff_login_failures WHERE source = $1
    ORDER BY last_at DESC OFFSET $2
)
"""


def source_of(address: str) -> str:
    """The source an attempt is counted under: the IPv4 address, the IPv6 /64, or the text
    itself (at most 64 characters) when it is not an IP address (the command line, a test)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def delay_after(failures: int, limit: int, longest: timedelta) -> timedelta:
    """How long a source waits after its ``failures``-th failure in a row for one login: from
    the ``limit``-th on, ``FIRST_DELAY`` doubling up to ``longest``."""
    if failures < limit:
        return timedelta(0)
    steps = min(failures - limit, 30)  # 2**30 * 30 s is far past any longest wait
    return min(longest, FIRST_DELAY * (1 << steps))


async def held_until(
    db: asyncpg.Pool | asyncpg.Connection, login: str, source: str, now: datetime
) -> datetime | None:
    """Until when ``source`` must wait before trying ``login`` again (None: it need not)."""
    until: datetime | None = await db.fetchval(
        "SELECT blocked_until FROM staff_login_failures "
        "WHERE login = $1 AND source = $2 AND blocked_until > $3",
        login, source, now,
    )
    return until


async def record_failure(
    db: asyncpg.Pool, login: str, source: str, now: datetime, limit: int, longest: timedelta
) -> timedelta:
    """Count one failure of ``login`` from ``source``; the wait it imposes (0: none)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM staff_login_failures WHERE last_at < $1", now - QUIET_TIME
        )
        failures: int = await conn.fetchval(FAILURE_SQL, login, source, now, QUIET_TIME)
        delay = delay_after(failures, limit, longest)
        await conn.execute(
            "UPDATE staff_login_failures SET blocked_until = $3 WHERE login = $1 AND source = $2",
            login, source, now + delay if delay else None,
        )
        if failures == 1:  # a new row: keep the table within its bounds
            await conn.execute(TRIM_SOURCE_SQL, source, MAX_PER_SOURCE)
            await conn.execute(TRIM_ALL_SQL, MAX_ROWS)
    return delay


async def clear(db: asyncpg.Pool | asyncpg.Connection, login: str, source: str | None = None
                ) -> None:
    """Forget the failures of ``login`` from ``source`` (a success), or from every source (an
    administrator's reset)."""
    await db.execute(
        "DELETE FROM staff_login_failures WHERE login = $1 AND ($2::text IS NULL OR source = $2)",
        login, source,
    )
