"""Runner liveness, lease recovery, expiry in the database, and domains known to take mail.

The tables here are ``runners`` and ``mail_domains``; the statements on ``deliveries`` are the
queue's own recovery rules (engine/queue owns that table). Times come from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import asyncpg

from engine.queue import uptime
from engine.queue.store import NOTIFY_CHANNEL

# Leases of runners that have not announced themselves for ``stale`` seconds, or that have no
# row at all (stopped, or never started here), become due now. Rows still leased by a live
# runner are left alone.
RECLAIM_SQL = """
UPDATE deliveries d
SET next_attempt_at = $1, updated_at = $1
WHERE d.state = 'sending' AND d.next_attempt_at > $1 AND d.lease_owner <> $3
  AND NOT EXISTS (
      SELECT 1 FROM runners r
      WHERE r.name = d.lease_owner AND r.heartbeat_at > $1 - make_interval(secs => $2)
  )
"""

# Unsent rows past their maximum age: queued or deferred, or leased by a runner that is gone
# (its lease ran out). A row leased by a live runner is that runner's to expire.
EXPIRE_SQL = """
UPDATE deliveries
SET state = 'failed', reason = 'expired', category = $2, lease_owner = NULL,
    last_text = 'not delivered within the maximum age'
        || COALESCE('; last reply: ' || last_text, ''),
    updated_at = $1, finished_at = $1,
    -- Still leased by a runner that is gone: it may have sent it (migration 020).
    interrupted = interrupted OR state = 'sending'
WHERE expires_at <= $1
  AND (state IN ('queued', 'deferred') OR (state = 'sending' AND next_attempt_at <= $1))
"""


async def heartbeat(pool: asyncpg.Pool, name: str, now: datetime) -> None:
    await pool.execute(
        "INSERT INTO runners (name, started_at, heartbeat_at) VALUES ($1, $2, $2) "
        "ON CONFLICT (name) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
        name, now,
    )
    # The history the monthly report counts availability from (engine/queue/uptime.py).
    await uptime.extend(pool, name, now)


async def sign_off(pool: asyncpg.Pool, name: str) -> None:
    """A runner that stopped cleanly (its leases released) leaves the table."""
    await pool.execute("DELETE FROM runners WHERE name = $1", name)


async def reclaim_gone(pool: asyncpg.Pool, me: str, now: datetime, stale: float) -> int:
    """Make the leases of gone runners due now; returns how many rows; wakes the runners."""
    result: str = await pool.execute(RECLAIM_SQL, now, float(stale), me)
    count = int(result.split()[-1])
    if count:
        await pool.execute("SELECT pg_notify($1, 'reclaimed')", NOTIFY_CHANNEL)
    await pool.execute(
        "DELETE FROM runners WHERE heartbeat_at < $1", now - timedelta(days=1)
    )
    return count


async def expire_overdue(pool: asyncpg.Pool, now: datetime, category: str | None) -> int:
    """Fail unsent rows past their maximum age; returns how many."""
    result: str = await pool.execute(EXPIRE_SQL, now, category)
    return int(result.split()[-1])


async def has_work(pool: asyncpg.Pool, now: datetime) -> bool:
    """True while some delivery is due now or is leased by some runner (it may come back)."""
    return bool(
        await pool.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM deliveries
                WHERE state = 'sending'
                   OR (state IN ('queued', 'deferred') AND next_attempt_at <= $1)
            )
            """,
            now,
        )
    )


async def remember_domains(pool: asyncpg.Pool, domains: Iterable[str], now: datetime) -> None:
    names = sorted(set(domains))
    if names:
        await pool.execute(
            "INSERT INTO mail_domains (domain, last_delivered_at) "
            "SELECT unnest($1::text[]), $2 "
            "ON CONFLICT (domain) DO UPDATE SET last_delivered_at = EXCLUDED.last_delivered_at",
            names, now,
        )


async def domain_known(pool: asyncpg.Pool, domain: str) -> bool:
    """True when the domain has accepted mail from us before."""
    return bool(
        await pool.fetchval("SELECT EXISTS (SELECT 1 FROM mail_domains WHERE domain = $1)", domain)
    )
