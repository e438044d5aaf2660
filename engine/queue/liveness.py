"""Runner liveness, lease recovery, expiry in the database, and domains known to take mail.

The tables here are ``runners`` and ``mail_domains``; the statements on ``deliveries`` are the
queue's own recovery rules (engine/queue owns that table). Times come from the caller's clock.
"""

from __future__ import annotations

import json
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

# Some delivery due now or leased by some runner. The live states come first, so that a
# live-only index serves it: written as one OR, the test read every row of the table (a year of
# history) at each look.
HAS_WORK_SQL = """
SELECT EXISTS (
    SELECT 1 FROM deliveries
    WHERE state IN ('queued', 'deferred', 'sending')
      AND (state = 'sending' OR next_attempt_at <= $1)
)
"""


# The live rows, and those leased by a runner, as the planner estimates them and as they are
# (the live-only indexes count them).
LIVE_ROWS_SQL = (
    "SELECT 1 FROM deliveries WHERE state IN ('queued', 'deferred', 'sending')",
    "SELECT 1 FROM deliveries WHERE state = 'sending'",
)
# Fewer rows than this are cheap whatever the plan; more than MISJUDGED times the planner's
# estimate and the statistics are refreshed.
FEW_LIVE = 500
MISJUDGED = 4
_ANALYZE_LOCK = 0x6D616D6F72750041  # 'mamoru' + 041: one refresh at a time

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
    return bool(await pool.fetchval(HAS_WORK_SQL, now))


async def refresh_live_estimate(pool: asyncpg.Pool) -> bool:
    """ANALYZE deliveries when the planner believes in far fewer live (or leased) rows than
    there are; True when it did.

    Autoanalyze waits for a tenth of the table to change, so on a year of history (or right
    after a broadcast finished) the statistics say no row is queued, deferred or sending for
    the whole of the next broadcast. Believing that, the planner answers the claim from any
    live-only index and sorts every live row for each batch (deliveries_due gives the order
    without a sort), and the outcome writer reads every live row instead of its own by id:
    each batch costs O(live rows). One runner at a time refreshes (an advisory lock).
    """
    async with pool.acquire() as conn:
        for sql in LIVE_ROWS_SQL:
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql))
            enough = int(max(FEW_LIVE, MISJUDGED * float(plan[0]["Plan"]["Plan Rows"]))) + 1
            if await conn.fetchval(f"SELECT count(*) FROM ({sql} LIMIT $1) AS l", enough) >= enough:
                break
        else:
            return False
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _ANALYZE_LOCK):
                return False
            # The state column alone, sampled at its own small target (migration 040).
            await conn.execute("ANALYZE deliveries (state)")
    return True


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
