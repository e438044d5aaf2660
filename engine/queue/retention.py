"""Retention: finished broadcasts leave after ``[queue] keep`` (13 months by default).

A board sends about 200 broadcasts a year; without this the queue would hold millions of
finished deliveries, their attempts, reads and answers after a year. A broadcast leaves as a
whole, never a part of it, and only when

- its send time and every one of its deliveries' last change are older than ``keep``,
- none of its deliveries is still live (queued, deferred, sending), and
- no reminder of it was sent within ``keep`` (the reminder still counts reads for it).

Its deliveries go in bounded batches, one statement per batch (their attempts in the same
statement; reads, answers, links, downloads and the rest by ON DELETE
CASCADE, migrations 013-019 and 036), then the broadcast row with its owner row, survey, read
request and attachments (CASCADE too). Statistics are refreshed afterwards. The audit log is
not touched: it is kept for ``[staff] audit_keep`` by engine/staff/audit_keeper.py.

Why batched deletes and not monthly partitions: see docs/operation.md (保存期間) and
bench/scale.py. In short, partitioning ``deliveries`` would change its primary key to include
the month and break the foreign keys of the eight tables that reference it, for a saving that
matters only at a size a board does not reach (a month of a board is ≈ 0.5 million rows).

``RetentionKeeper`` runs the prune once when ``mamoru serve`` starts and then once a day, in
the first worker; ``mamoru queue prune`` runs it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.platform.clock import Clock
from engine.platform.outage import DATABASE_ERRORS

log = logging.getLogger(__name__)

DAY = 86400.0
BATCH = 10_000  # deliveries per statement: ~1 s of work, short locks, bounded WAL per commit
BROADCASTS_PER_ROUND = 20

LIVE = "('queued', 'deferred', 'sending')"

# Broadcasts that may leave ($1: the cut-off). The live-row test uses the partial index
# deliveries_live_by_broadcast (migration 036); the age test reads the broadcast's rows once.
ELIGIBLE_SQL = f"""
SELECT b.id FROM broadcasts b
WHERE b.send_at < $1 AND b.created_at < $1
  AND NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.broadcast_id = b.id AND d.state IN {LIVE})
  AND NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.broadcast_id = b.id AND d.updated_at >= $1)
  AND NOT EXISTS (SELECT 1 FROM reminder_broadcasts r JOIN broadcasts rb ON rb.id = r.broadcast_id
                  WHERE r.original_id = b.id AND rb.send_at >= $1)
ORDER BY b.id
LIMIT $2
"""

# One batch of one round's broadcasts' deliveries, with their attempts (no foreign key, to
# keep the hot insert cheap). Kept bounce mails stay: they have no key on purpose (migration
# 003) and the error report shows them without their delivery.
BATCH_SQL = """
WITH gone AS (
    SELECT id FROM deliveries WHERE broadcast_id = ANY($1::bigint[]) LIMIT $2
),
a AS (DELETE FROM delivery_attempts x USING gone WHERE x.delivery_id = gone.id RETURNING 1),
d AS (DELETE FROM deliveries x USING gone WHERE x.id = gone.id RETURNING 1)
SELECT (SELECT count(*) FROM d) AS deliveries, (SELECT count(*) FROM a) AS attempts
"""

# The broadcasts themselves, once empty (their owner row, survey, read request, reminders'
# links and attachments by CASCADE).
BROADCASTS_SQL = """
DELETE FROM broadcasts b
WHERE b.id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = b.id)
"""

COUNT_SQL = f"""
WITH e AS ({ELIGIBLE_SQL})
SELECT (SELECT count(*) FROM e) AS broadcasts,
       (SELECT count(*) FROM deliveries WHERE broadcast_id IN (SELECT id FROM e)) AS deliveries
"""


@dataclass(frozen=True)
class Pruned:
    broadcasts: int = 0
    deliveries: int = 0
    attempts: int = 0
    seconds: float = 0.0


def cutoff(now: datetime, keep: float) -> datetime:
    return now - timedelta(seconds=keep)


async def prune_preview(pool: asyncpg.Pool, now: datetime, keep: float) -> Pruned:
    """What ``prune`` would remove now (every eligible broadcast), removing nothing."""
    row = await pool.fetchrow(COUNT_SQL, cutoff(now, keep), 2**31 - 1)
    assert row is not None
    return Pruned(broadcasts=int(row["broadcasts"]), deliveries=int(row["deliveries"]))


async def prune(
    pool: asyncpg.Pool, now: datetime, keep: float, batch: int = BATCH
) -> Pruned:
    """Remove every broadcast finished before ``now - keep`` with all its rows, in batches of
    at most ``batch`` deliveries (each batch its own transaction), then refresh statistics."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    limit = cutoff(now, keep)
    broadcasts = deliveries = attempts = 0
    while True:
        ids = [r["id"] for r in await pool.fetch(ELIGIBLE_SQL, limit, BROADCASTS_PER_ROUND)]
        if not ids:
            break
        while True:
            row = await pool.fetchrow(BATCH_SQL, ids, batch)
            assert row is not None
            deliveries += int(row["deliveries"])
            attempts += int(row["attempts"])
            if row["deliveries"] < batch:
                break
        status = await pool.execute(BROADCASTS_SQL, ids)
        broadcasts += int(status.split()[-1])
    if deliveries or broadcasts:
        # The planner's statistics at once, not at autovacuum's next turn (engine.platform.db
        # has the same for imports; the queue may not import it, it reaches the network).
        try:
            await pool.execute("ANALYZE deliveries, delivery_attempts, broadcasts")
        except DATABASE_ERRORS as exc:
            log.warning("ANALYZE after the prune failed (left to autovacuum): %s", exc)
    return Pruned(broadcasts, deliveries, attempts, round(loop.time() - started, 3))


class RetentionKeeper:
    """A task beside the runner (``mamoru serve``'s first worker); ``stop`` ends it."""

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, keep: float, interval: float = DAY
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.keep = keep
        self.interval = interval
        self.runs = 0
        self.last: Pruned | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention-keeper")

    async def prune_once(self) -> Pruned | None:
        """What was removed, or None when the database did not answer."""
        try:
            done = await prune(self.pool, self.clock.now(), self.keep)
        except DATABASE_ERRORS as exc:
            log.warning("配信履歴の整理に失敗しました。次回再試行します / queue prune failed, "
                        "retrying at the next turn: %s", exc)
            return None
        self.last = done
        # Only WARNING and above reach the operator (serve configures no logging): one line a
        # day when something left.
        log.log(
            logging.WARNING if done.broadcasts else logging.INFO,
            "配信履歴の整理: 配信 %d 件、宛先 %d 件を削除 (保存期間 %d 日、%.1f 秒) / queue "
            "prune removed %d broadcasts, %d deliveries",
            done.broadcasts, done.deliveries, int(self.keep // DAY), done.seconds,
            done.broadcasts, done.deliveries,
        )
        return done

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.prune_once()
            finally:
                self.runs += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        """At once: a batch in progress is cancelled, which rolls only that batch back."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
