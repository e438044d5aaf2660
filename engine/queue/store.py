"""The PostgreSQL queue: fan-out, claim under a lease, batched outcomes, release, reports.

The queue package is the one place that knows the ``broadcasts``, ``deliveries`` and
``delivery_attempts`` tables: this module, ``enqueue`` (the fan-out), ``broadcasts`` (listing,
cancelling), ``bounced`` (deliveries a later bounce fails) and ``withdrawn`` (recipients who left
or were purged). Every statement takes the time from the caller (the injectable clock) instead
of the server's ``now()``, so that the same rules hold in tests that move time by hand.

Delivery is at least once: a delivery whose lease ran out (its runner died) is claimed again,
and a mail that was in flight at the death may therefore be sent twice. Nothing else repeats:
an outcome is written only if the writer still holds the lease.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from engine.platform.address import mask_addresses
from engine.platform.errors import InputError, QueueError
from engine.platform.sealing import RECIPIENT, Sealer
from engine.queue import broadcasts
from engine.queue.broadcasts import CANCELLED_TEXT, BroadcastSummary, Cancellation
from engine.queue.enqueue import NOTIFY_CHANNEL, store_broadcast
from engine.queue.models import (
    AttemptResult,
    BroadcastContent,
    ClaimedDelivery,
    NewBroadcast,
    Outcome,
    Priority,
    State,
)

log = logging.getLogger(__name__)

# Due rows, most urgent first, skipping rows another runner is claiming right now. A row in
# state 'sending' is due only once its lease (next_attempt_at) ran out: its runner died.
# A due row of a cancelled broadcast (a lease that ran out after the cancel, a deferral
# recorded after it) is not claimed but failed as cancelled ($7 is its text).
CLAIM_SQL = """
WITH due AS (
    -- state 'sending' here: a lease that ran out or whose runner is gone (liveness.py), taken
    -- over; the mail may have been on the wire (migration 020).
    SELECT id, broadcast_id, state AS was FROM deliveries
    WHERE state IN ('queued', 'deferred', 'sending') AND next_attempt_at <= $1
      -- Domains whose lane in this runner is full wait: $6 lists lanes full of emergency
      -- mail, which wait for every priority; $5 the other full lanes, which do not hold up an
      -- emergency.
      AND (priority = 0 OR domain <> ALL($5::text[]))
      AND domain <> ALL($6::text[])
    ORDER BY priority, next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
-- One look-up per broadcast of the batch (usually one), not one per row.
cancelled AS (
    SELECT id FROM broadcasts
    WHERE id IN (SELECT DISTINCT broadcast_id FROM due) AND cancelled_at IS NOT NULL
),
dropped AS (
    UPDATE deliveries d
    SET state = 'failed', reason = 'cancelled', category = NULL, last_code = NULL,
        last_status = NULL, last_text = $7, lease_owner = NULL, finished_at = $1,
        updated_at = $1, interrupted = d.interrupted OR due.was = 'sending'
    FROM due
    WHERE d.id = due.id AND due.broadcast_id IN (SELECT id FROM cancelled)
)
UPDATE deliveries d
SET state = 'sending',
    next_attempt_at = $1 + make_interval(secs => $3),
    lease_owner = $4,
    updated_at = $1,
    interrupted = d.interrupted OR due.was = 'sending'
FROM due
WHERE d.id = due.id AND due.broadcast_id NOT IN (SELECT id FROM cancelled)
RETURNING d.id, d.broadcast_id, d.recipient_sealed, d.domain, d.attempts, d.expires_at,
          d.priority,
          d.last_code, d.last_status, d.last_text
"""

# A runner's own rows are found by id: "still leased by me" is written
# `d.state IS NOT DISTINCT FROM 'sending'` (state is never NULL, so it means `= 'sending'`)
# because the planner cannot prove the live-only partial indexes' predicate from it. With
# `= 'sending'` it may scan every live row of every broadcast through one of those indexes and
# join them to the batch (a custom plan does whenever the statistics say few rows are leased:
# 9-18 ms per batch of 200 against 2-5 ms by primary key, with 8,000,000 finished rows or
# none; bench/scale.py --profile, issue 25).
LEASED_BY = "d.state IS NOT DISTINCT FROM 'sending' AND d.lease_owner = "

# One statement per batch of outcomes: update the rows still leased by this runner and log the
# attempts of exactly those rows (the update returns what the log needs: no join back).
RECORD_SQL = """
WITH upd AS (
    UPDATE deliveries d
    SET state = u.outcome,
        attempts = d.attempts + u.counts,
        last_code = u.code,
        last_status = u.status,
        last_text = u.text,
        reason = u.reason,
        category = u.category,
        next_attempt_at = COALESCE(u.next_at, d.next_attempt_at),
        lease_owner = NULL,
        updated_at = u.at,
        finished_at = CASE WHEN u.outcome IN ('delivered', 'failed') THEN u.at END
    FROM unnest(
        $1::bigint[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[],
        $8::timestamptz[], $9::timestamptz[], $10::text[], $12::text[], $13::boolean[]
    ) AS u(id, outcome, counts, code, status, text, reason, next_at, at, host, category, tls)
    WHERE d.id = u.id AND """ + LEASED_BY + """$11
    RETURNING d.id, u.at, u.outcome, u.code, u.status, u.text, u.host, u.tls, u.counts
),
ins AS (
    INSERT INTO delivery_attempts
        (delivery_id, attempted_at, outcome, code, status, text, host, runner, tls)
    SELECT id, at, outcome, code, status, text, host, $11, tls
    FROM upd
    WHERE counts = 1
)
SELECT count(*) FROM upd
"""

# A connection attempt that did not count (the site said "too fast", or refused the connection
# while the delivery goes back to its lane): the delivery shows why it is still waiting, and
# the attempt is logged. Only rows still leased by this runner are touched.
NOTE_SQL = """
WITH upd AS (
    UPDATE deliveries d
    SET last_code = u.code, last_status = u.status, last_text = u.text, reason = u.reason,
        category = u.category, updated_at = u.at
    FROM unnest(
        $1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[], $8::text[]
    ) AS u(id, code, status, text, reason, category, at, host)
    WHERE d.id = u.id AND """ + LEASED_BY + """$9
    RETURNING d.id, u.at, u.code, u.status, u.text, u.host
)
INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, code, status, text, host, runner)
SELECT id, at, 'deferred', code, status, text, host, $9
FROM upd
"""

# Rows a runner gives back unsent. Those of a cancelled broadcast are failed as cancelled
# ($5 is their text) instead of going back to the queue.
RELEASE_SQL = """
UPDATE deliveries d
SET state = CASE WHEN b.cancelled_at IS NOT NULL THEN 'failed'
                 WHEN d.attempts = 0 THEN 'queued' ELSE 'deferred' END,
    reason = CASE WHEN b.cancelled_at IS NOT NULL THEN 'cancelled' ELSE d.reason END,
    category = CASE WHEN b.cancelled_at IS NOT NULL THEN NULL ELSE d.category END,
    last_code = CASE WHEN b.cancelled_at IS NOT NULL THEN NULL ELSE d.last_code END,
    last_status = CASE WHEN b.cancelled_at IS NOT NULL THEN NULL ELSE d.last_status END,
    last_text = CASE WHEN b.cancelled_at IS NOT NULL THEN $5::text ELSE d.last_text END,
    finished_at = CASE WHEN b.cancelled_at IS NOT NULL THEN $3::timestamptz END,
    next_attempt_at = $4,
    lease_owner = NULL,
    updated_at = $3
FROM broadcasts b
WHERE b.id = d.broadcast_id
  AND d.id = ANY($1::bigint[]) AND """ + LEASED_BY + """$2
"""

COUNTS_SQL = """
SELECT b.id, b.subject, b.priority, b.created_at, b.recipient_count, b.suppressed_count,
       d.state, count(d.id) AS n
FROM broadcasts b LEFT JOIN deliveries d ON d.broadcast_id = b.id
WHERE b.id = ANY($1::bigint[])
GROUP BY b.id, d.state
ORDER BY b.id DESC
"""


def _masked(text: str | None) -> str | None:
    """A reply as stored: receivers quote the recipient's address in it
    (engine.platform.address)."""
    return mask_addresses(text) if text and "@" in text else text


@asynccontextmanager
async def _connection(
    pool: asyncpg.Pool, conn: asyncpg.Connection | None
) -> AsyncIterator[asyncpg.Connection]:
    """The caller's connection when given, else one from the pool for the duration."""
    if conn is not None:
        yield conn
        return
    async with pool.acquire() as acquired:
        yield acquired


@dataclass(frozen=True)
class BroadcastCounts:
    id: int
    subject: str
    priority: Priority
    created_at: datetime
    recipient_count: int
    suppressed_count: int
    by_state: dict[State, int]


# A delivery's latest attempt over TLS or not (NULL: no attempt reached a server), as a column
# of a query FROM deliveries; one indexed lookup per row (delivery_attempts_by_delivery).
LAST_TLS = (
    "(SELECT a.tls FROM delivery_attempts a WHERE a.delivery_id = deliveries.id "
    "ORDER BY a.attempted_at DESC LIMIT 1)"
)


class Queue:
    """The queue's operations over an asyncpg pool.

    Recipients are stored sealed with ``sealer`` (engine/platform/sealing.py) beside their address
    hash; every method takes and returns plain addresses, sealing and opening at the edge.
    """

    def __init__(self, pool: asyncpg.Pool, sealer: Sealer) -> None:
        self.pool = pool
        self.sealer = sealer

    def open_recipient(self, sealed: bytes) -> str:
        return self.sealer.open(sealed, RECIPIENT)

    async def enqueue(
        self,
        broadcast: NewBroadcast,
        now: datetime,
        max_age: float,
        conn: asyncpg.Connection | None = None,
        contacts: Sequence[tuple[bytes, bytes]] = (),
    ) -> int:
        """Store the broadcast and fan it out to one delivery per recipient, all or nothing.

        ``contacts`` are recipients already known as (address sealed under the contacts'
        purpose, address hash), sent to before ``broadcast.recipients``; each address is
        sent to once, compared without case (``engine.queue.enqueue``).

        Recipients on the suppression list are not sent to: they get a delivery already
        ``failed`` with reason ``suppressed``, the suppression's category and a Japanese text
        saying why, so the operator still sees every guardian; ``suppressed_count`` counts them.

        With ``conn`` (a connection in an open transaction) the fan-out joins that transaction,
        so a caller that resolved the audience in it commits both together (engine.people).
        """
        async with _connection(self.pool, conn) as conn, conn.transaction():
            return await store_broadcast(conn, self.sealer, broadcast, now, max_age, contacts)

    async def claim(
        self,
        owner: str,
        limit: int,
        now: datetime,
        lease_seconds: float,
        skip_domains: Sequence[str] = (),
        skip_domains_all: Sequence[str] = (),
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries under a lease, most urgent first.

        Non-emergency deliveries to ``skip_domains``, and any to ``skip_domains_all``, are
        left for later.
        """
        if limit <= 0:
            return []
        rows = await self.pool.fetch(
            CLAIM_SQL, now, limit, float(lease_seconds), owner, list(skip_domains),
            list(skip_domains_all), CANCELLED_TEXT,
        )
        rows = sorted(rows, key=lambda r: (r["priority"], r["id"]))
        return [
            ClaimedDelivery(
                id=r["id"],
                broadcast_id=r["broadcast_id"],
                recipient=self.open_recipient(r["recipient_sealed"]),
                domain=r["domain"],
                attempts=r["attempts"],
                expires_at=r["expires_at"],
                last_code=r["last_code"],
                last_status=r["last_status"],
                last_text=r["last_text"],
                priority=Priority(r["priority"]),
            )
            for r in rows
        ]

    async def record(self, owner: str, results: Sequence[AttemptResult]) -> int:
        """Write a batch of outcomes; returns how many rows this owner still held."""
        if not results:
            return 0
        cols: list[list[Any]] = [[] for _ in range(12)]
        for r in results:
            for col, value in zip(
                cols,
                (
                    r.delivery_id, r.outcome.value, 1 if r.counts else 0, r.code, r.status,
                    _masked(r.text), r.reason, r.next_attempt_at, r.attempted_at, r.host,
                    r.category, r.tls,
                ),
                strict=True,
            ):
                col.append(value)
        written: int = await self.pool.fetchval(RECORD_SQL, *cols[:10], owner, cols[10], cols[11])
        if written != len(results):
            # Settled elsewhere first: the lease ran out and another runner took the delivery
            # over, or a bounce for it arrived before our own outcome. That outcome stands.
            log.warning(
                "%d of %d outcomes were not written: those deliveries had already been settled "
                "(lease taken over, or a bounce arrived first)",
                len(results) - written,
                len(results),
            )
        return written

    async def note(self, owner: str, results: Sequence[AttemptResult]) -> None:
        """Log attempts that do not settle their delivery (it stays leased by ``owner``)."""
        if not results:
            return
        await self.pool.execute(
            NOTE_SQL,
            [r.delivery_id for r in results], [r.code for r in results],
            [r.status for r in results], [_masked(r.text) for r in results],
            [r.reason for r in results], [r.category for r in results],
            [r.attempted_at for r in results], [r.host for r in results], owner,
        )

    async def release(
        self, owner: str, ids: Sequence[int], now: datetime, due: datetime | None = None
    ) -> None:
        """Give claimed but unsent deliveries back to the queue, due at ``due`` (default now)."""
        if ids:
            await self.pool.execute(
                RELEASE_SQL, list(ids), owner, now, due or now, CANCELLED_TEXT
            )

    async def extend_leases(
        self, owner: str, ids: Sequence[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        """Renew the lease of deliveries this owner still holds; returns the ids it held
        (a lease that ran out may have been taken over by another runner)."""
        if not ids:
            return set()
        rows = await self.pool.fetch(
            """
            UPDATE deliveries d
            SET next_attempt_at = $3::timestamptz + make_interval(secs => $4),
                updated_at = $3
            WHERE id = ANY($1::bigint[]) AND """ + LEASED_BY + """$2
            RETURNING id
            """,
            list(ids), owner, now, float(lease_seconds),
        )
        return {r["id"] for r in rows}

    async def broadcast_contents(self, ids: Sequence[int]) -> dict[int, BroadcastContent]:
        rows = await self.pool.fetch(
            "SELECT id, sender, subject, body, priority, sender_name, reply_to, personal_page "
            "FROM broadcasts "
            "WHERE id = ANY($1)",
            list(ids),
        )
        return {
            r["id"]: BroadcastContent(
                r["id"], r["sender"], r["subject"], r["body"], Priority(r["priority"]),
                r["sender_name"], r["reply_to"], r["personal_page"],
            )
            for r in rows
        }

    async def pending_sender_domains(self) -> list[str]:
        """The sender domains (lower case) of broadcasts with deliveries still to send."""
        rows = await self.pool.fetch(
            """
            SELECT DISTINCT lower(split_part(b.sender, '@', 2)) AS domain
            FROM broadcasts b
            -- Only unfinished rows: the partial index deliveries_due holds exactly those.
            WHERE b.id IN (
                SELECT DISTINCT broadcast_id FROM deliveries
                WHERE state IN ('queued', 'deferred', 'sending')
            )
            ORDER BY 1
            """
        )
        return [r["domain"] for r in rows]

    async def has_due(self, now: datetime) -> bool:
        """True when some delivery is due now (used to decide that the queue is drained)."""
        return bool(
            await self.pool.fetchval(
                """
                SELECT EXISTS (
                    SELECT 1 FROM deliveries
                    WHERE state IN ('queued', 'deferred', 'sending') AND next_attempt_at <= $1
                )
                """,
                now,
            )
        )

    async def oldest_due(self, now: datetime) -> float:
        """Seconds the longest-waiting due delivery (queued or deferred) has been due; 0 when
        none is. One index probe per priority (the partial index ``deliveries_due``)."""
        oldest: datetime | None = await self.pool.fetchval(
            "SELECT min(t.at) FROM unnest($2::smallint[]) AS p(priority) CROSS JOIN LATERAL ("
            "  SELECT next_attempt_at AS at FROM deliveries"
            "  WHERE state IN ('queued', 'deferred') AND priority = p.priority"
            "    AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 1) AS t",
            now, [int(p) for p in Priority],
        )
        return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0

    async def state_counts(self) -> dict[State, int]:
        rows = await self.pool.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        counts = {s: 0 for s in State}
        for r in rows:
            counts[State(r["state"])] = r["n"]
        return counts

    async def live_state_counts(self) -> dict[State, int]:
        """Queued, deferred and sending only: counted on the live rows' partial index
        (``deliveries_due``), so a table of millions of finished rows costs nothing here."""
        rows = await self.pool.fetch(
            "SELECT state, count(*) AS n FROM deliveries "
            "WHERE state IN ('queued', 'deferred', 'sending') GROUP BY state"
        )
        counts = {s: 0 for s in (State.QUEUED, State.DEFERRED, State.SENDING)}
        for r in rows:
            counts[State(r["state"])] = r["n"]
        return counts

    async def broadcast_counts(
        self, ids: Sequence[int] | None = None, latest: int = 20
    ) -> list[BroadcastCounts]:
        """Counts by state for the given broadcasts, or for the ``latest`` ones; newest first."""
        if latest < 0:
            raise InputError(f"--latest は 0 以上です / --latest must be 0 or more, not {latest}")
        if ids is None:
            ids = [
                r["id"]
                for r in await self.pool.fetch(
                    "SELECT id FROM broadcasts ORDER BY id DESC LIMIT $1", latest
                )
            ]
        rows = await self.pool.fetch(COUNTS_SQL, list(ids))
        out: dict[int, BroadcastCounts] = {}
        for r in rows:
            bc = out.get(r["id"])
            if bc is None:
                bc = out[r["id"]] = BroadcastCounts(
                    id=r["id"],
                    subject=r["subject"],
                    priority=Priority(r["priority"]),
                    created_at=r["created_at"],
                    recipient_count=r["recipient_count"],
                    suppressed_count=r["suppressed_count"],
                    by_state={s: 0 for s in State},
                )
            if r["state"] is not None:
                bc.by_state[State(r["state"])] = r["n"]
        return list(out.values())

    async def list_broadcasts(
        self, now: datetime, latest: int = 20, scheduled_only: bool = False
    ) -> list[BroadcastSummary]:
        """The latest broadcasts, newest first (``engine.queue.broadcasts``)."""
        return await broadcasts.list_broadcasts(self.pool, now, latest, scheduled_only)

    async def cancel(self, broadcast_id: int, now: datetime) -> Cancellation:
        """Stop everything of a broadcast not yet sent (``engine.queue.broadcasts.cancel``)."""
        return await broadcasts.cancel(self.pool, broadcast_id, now)

    async def cancelled_among(self, ids: Sequence[int]) -> set[int]:
        """Those of the broadcasts ``ids`` that are cancelled: a runner polls this for the
        broadcasts of the rows it holds and drops (releases) theirs."""
        return await broadcasts.cancelled_among(self.pool, ids)

    async def recipient_of(self, delivery_id: int) -> str | None:
        """The address a delivery was for (a personal link names its delivery), or None."""
        sealed: bytes | None = await self.pool.fetchval(
            "SELECT recipient_sealed FROM deliveries WHERE id = $1", delivery_id
        )
        return None if sealed is None else self.open_recipient(sealed)

    async def deliveries_of(self, broadcast_id: int) -> list[dict[str, Any]]:
        """One row per recipient of a broadcast, in the order they were enqueued."""
        exists = await self.pool.fetchval("SELECT 1 FROM broadcasts WHERE id = $1", broadcast_id)
        if not exists:
            raise QueueError(f"there is no broadcast {broadcast_id}")
        rows = await self.pool.fetch(
            f"""
            SELECT id, recipient_sealed, state, attempts, last_code, last_status, last_text,
                   reason, category, created_at, updated_at, finished_at, {LAST_TLS} AS tls,
                   state = 'failed' AND interrupted AS may_have_arrived
            FROM deliveries WHERE broadcast_id = $1 ORDER BY id
            """,
            broadcast_id,
        )
        return [
            {"id": r["id"], "recipient": self.open_recipient(r["recipient_sealed"]),
             **{k: v for k, v in r.items() if k not in ("id", "recipient_sealed")}}
            for r in rows
        ]


__all__ = ["LAST_TLS", "NOTIFY_CHANNEL", "BroadcastCounts", "Queue", "Outcome"]
