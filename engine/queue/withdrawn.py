"""Deliveries withdrawn after fan-out: their recipient left, or its data was purged.

A guardian's one-click unsubscribe takes effect at once, also for mail already fanned out and
not sent yet (a scheduled broadcast, the rest of a large one); a purge removes the address from
every delivery. Both work by the recipient's address hash (engine.platform.sealing), without opening
anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from engine.platform.sealing import RECIPIENT, Sealer

# Unsent deliveries to a recipient who asked for no more mail: failed, saying why.
WITHDRAW_SQL = """
UPDATE deliveries
SET state = 'failed', reason = 'suppressed', category = 'other', last_code = NULL,
    last_status = NULL, last_text = $3, finished_at = $2, updated_at = $2
WHERE recipient_hash = ANY($1::bytea[]) AND state IN ('queued', 'deferred')
"""

LEFT_TEXT = "配信停止の申し出により送信しませんでした (the recipient unsubscribed)"


async def withdraw_unsent(
    conn: asyncpg.Connection | asyncpg.Pool,
    hashes: Sequence[bytes],
    now: datetime,
    text: str = LEFT_TEXT,
) -> int:
    """Fail the not yet sent deliveries to these address hashes; returns how many. A delivery
    a runner holds right now (state sending) is on the wire and completes. ``text`` says why
    (the recipient unsubscribed, or the school removed the address from its roster)."""
    if not hashes:
        return 0
    result: str = await conn.execute(WITHDRAW_SQL, list(hashes), now, text)
    return int(result.split()[-1])


# Unsent deliveries to a recipient who now takes emergencies only: all but the urgent ones.
WITHDRAW_ROUTINE_SQL = """
UPDATE deliveries d
SET state = 'failed', reason = 'suppressed', category = 'other', last_code = NULL,
    last_status = NULL, last_text = $3, finished_at = $2, updated_at = $2
FROM broadcasts b
WHERE b.id = d.broadcast_id AND d.recipient_hash = ANY($1::bytea[])
  AND d.state IN ('queued', 'deferred') AND d.priority <> 0 AND b.category <> 'emergency'
"""

ROUTINE_TEXT = (
    "緊急連絡だけを希望されたため送信しませんでした"
    " (the recipient takes emergencies only)"
)


async def withdraw_routine(
    conn: asyncpg.Connection | asyncpg.Pool, hashes: Sequence[bytes], now: datetime
) -> int:
    """Like ``withdraw_unsent``, but emergencies (by priority or category) stay queued."""
    if not hashes:
        return 0
    result: str = await conn.execute(WITHDRAW_ROUTINE_SQL, list(hashes), now, ROUTINE_TEXT)
    return int(result.split()[-1])


# The queue's copies of purged contacts' addresses (engine.people.accounts.purge): unsent
# deliveries fail, every delivery's address is replaced by a sealed placeholder and its hash
# dropped, and the bounces kept for them (whole mails) are deleted.
FORGET_SQL = """
WITH gone AS (
    UPDATE deliveries
    SET recipient_sealed = $2, recipient_hash = NULL,
        state = CASE WHEN state IN ('delivered', 'failed') THEN state ELSE 'failed' END,
        reason = CASE WHEN state IN ('delivered', 'failed') THEN reason ELSE 'cancelled' END,
        finished_at = coalesce(finished_at, $3), lease_owner = NULL, updated_at = $3
    -- NULL: every delivery (the contract's end).
    WHERE $1::bytea[] IS NULL OR recipient_hash = ANY($1::bytea[])
    RETURNING id
),
bounced AS (
    DELETE FROM bounces WHERE delivery_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone
"""

PURGED_TEXT = "(削除済み)"


async def forget_recipients(
    conn: asyncpg.Connection, sealer: Sealer, hashes: Sequence[bytes], now: datetime
) -> int:
    """Remove the addresses with these address hashes from the queue; returns the deliveries
    changed (their counts and states stay for the reports)."""
    if not hashes:
        return 0
    placeholder = sealer.seal(PURGED_TEXT, RECIPIENT)
    changed: int = await conn.fetchval(FORGET_SQL, list(hashes), placeholder, now)
    return changed


async def forget_everyone(conn: asyncpg.Connection, sealer: Sealer, now: datetime) -> int:
    """Every address out of the queue and every kept mail deleted (the contract's end);
    returns the deliveries changed."""
    await conn.execute("DELETE FROM bounces")
    await conn.execute("DELETE FROM inbound_messages")
    await conn.execute("DELETE FROM soft_failures")
    changed: int = await conn.fetchval(
        FORGET_SQL, None, sealer.seal(PURGED_TEXT, RECIPIENT), now
    )
    return changed
