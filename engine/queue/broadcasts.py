"""Broadcasts as a whole: the send-time rule, recipients without case, listing and cancelling.

Cancelling is the operator's "stop, wrong school!" button. ``cancel`` marks the broadcast
(``broadcasts.cancelled_at``) and, in the same transaction, turns every delivery not yet sent
into ``failed`` with reason ``cancelled``: ``queued`` and ``deferred`` rows, and ``sending``
rows whose lease has run out (their runner is gone). Rows still leased by a live runner are
that runner's: a ``NOTIFY mamoru_cancel, '<id>'`` tells it to drop them, and
``Queue.cancelled_among`` answers the same question when polled. Whatever a runner gives back
(``RELEASE_SQL``) or a claim finds due later (``CLAIM_SQL``) of a cancelled broadcast becomes
failed/cancelled there, so nothing of it is ever sent again once the runners know.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg

from engine.platform.errors import InputError
from engine.queue.models import Priority, State

CANCEL_CHANNEL = "mamoru_cancel"
REASON_CANCELLED = "cancelled"
#: The delivery's text once cancelled (the operator reads it in ``mamoru deliveries``).
CANCELLED_TEXT = "配信が取り消されたため送信しません / not sent: the broadcast was cancelled"
#: The label shown in the category column (``cancelled`` is no bounce category).
CANCELLED_LABEL_JA = "配信取り消し"
#: How far in the past a send time may be: a clock a little behind is no mistake, a wrong
#: year is.
SEND_AT_TOLERANCE = timedelta(minutes=1)
JST = timezone(timedelta(hours=9), "JST")

ACTIVE_STATES = (State.QUEUED, State.SENDING, State.DEFERRED)


def unique_recipients(recipients: Iterable[str]) -> list[str]:
    """Each address once, compared without case (carriers ignore case in the local part);
    the first spelling is kept, in the given order."""
    seen: dict[str, str] = {}
    for r in recipients:
        seen.setdefault(r.lower(), r)
    return list(seen.values())


def refuse_past_send_at(send_at: datetime, now: datetime) -> None:
    """InputError when ``send_at`` lies more than ``SEND_AT_TOLERANCE`` before ``now``: such a
    broadcast could only expire unsent (a wrong year or day, most likely)."""
    if send_at < now - SEND_AT_TOLERANCE:
        when = send_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
        current = now.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
        raise InputError(
            f"送信時刻 {when} は過去です (現在 {current})。日時を確かめてください。"
            f"何も登録していません / the send time is in the past; nothing was stored"
        )


class BroadcastState(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    FINISHED = "finished"
    CANCELLED = "cancelled"


BROADCAST_STATE_LABELS_JA: dict[BroadcastState, str] = {
    BroadcastState.SCHEDULED: "予約",
    BroadcastState.SENDING: "配信中",
    BroadcastState.FINISHED: "完了",
    BroadcastState.CANCELLED: "取り消し",
}


@dataclass(frozen=True)
class BroadcastSummary:
    """One broadcast as ``mamoru broadcasts list`` shows it."""

    id: int
    created_at: datetime
    send_at: datetime
    sender: str
    subject: str
    priority: Priority
    recipient_count: int
    suppressed_count: int
    cancelled_at: datetime | None
    by_state: dict[State, int]
    state: BroadcastState


@dataclass(frozen=True)
class Cancellation:
    """What ``cancel`` did: ``cancelled`` rows were stopped now; ``in_flight`` rows are leased
    by a live runner, which drops them on the NOTIFY (or has sent them already);
    ``delivered`` and ``failed`` were so before the cancel."""

    broadcast_id: int
    cancelled: int
    in_flight: int
    delivered: int
    failed: int


LIST_SQL = """
SELECT id, created_at, send_at, sender, subject, priority, recipient_count, suppressed_count,
       cancelled_at
FROM broadcasts
WHERE NOT $2 OR (send_at > $3 AND cancelled_at IS NULL)
ORDER BY id DESC
LIMIT $1
"""

STATE_COUNTS_SQL = """
SELECT broadcast_id, state, count(*) AS n FROM deliveries
WHERE broadcast_id = ANY($1::bigint[])
GROUP BY broadcast_id, state
"""

# Not-yet-sent rows: never claimed, waiting for a retry, or claimed by a runner that is gone.
STOP_SQL = """
UPDATE deliveries
SET state = 'failed', reason = 'cancelled', category = NULL, last_code = NULL,
    last_status = NULL, last_text = $3, lease_owner = NULL, finished_at = $2, updated_at = $2,
    interrupted = interrupted OR state = 'sending'
WHERE broadcast_id = $1
  AND (state IN ('queued', 'deferred') OR (state = 'sending' AND next_attempt_at <= $2))
"""


async def list_broadcasts(
    pool: asyncpg.Pool, now: datetime, latest: int = 20, scheduled_only: bool = False
) -> list[BroadcastSummary]:
    """The ``latest`` broadcasts, newest first; with ``scheduled_only`` only those whose send
    time is still ahead and that are not cancelled."""
    if latest < 0:
        raise InputError(f"--latest は 0 以上です / --latest must be 0 or more, not {latest}")
    rows = await pool.fetch(LIST_SQL, latest, scheduled_only, now)
    counts: dict[int, dict[State, int]] = {r["id"]: {s: 0 for s in State} for r in rows}
    for c in await pool.fetch(STATE_COUNTS_SQL, list(counts)):
        counts[c["broadcast_id"]][State(c["state"])] = c["n"]
    return [
        BroadcastSummary(
            id=r["id"],
            created_at=r["created_at"],
            send_at=r["send_at"],
            sender=r["sender"],
            subject=r["subject"],
            priority=Priority(r["priority"]),
            recipient_count=r["recipient_count"],
            suppressed_count=r["suppressed_count"],
            cancelled_at=r["cancelled_at"],
            by_state=counts[r["id"]],
            state=_state_of(r["cancelled_at"], r["send_at"], counts[r["id"]], now),
        )
        for r in rows
    ]


def _state_of(
    cancelled_at: datetime | None, send_at: datetime, by_state: dict[State, int], now: datetime
) -> BroadcastState:
    if cancelled_at is not None:
        return BroadcastState.CANCELLED
    if not any(by_state[s] for s in ACTIVE_STATES):
        return BroadcastState.FINISHED
    if send_at > now:
        return BroadcastState.SCHEDULED
    return BroadcastState.SENDING


async def cancel(pool: asyncpg.Pool, broadcast_id: int, now: datetime) -> Cancellation:
    """Cancel a broadcast that still has something to send (module docstring); InputError for
    an unknown, finished or already cancelled one, which changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT cancelled_at FROM broadcasts WHERE id = $1 FOR UPDATE", broadcast_id
        )
        if row is None:
            raise InputError(
                f"配信 {broadcast_id} はありません / there is no broadcast {broadcast_id}"
            )
        if row["cancelled_at"] is not None:
            at = row["cancelled_at"].astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
            raise InputError(
                f"配信 {broadcast_id} は {at} に取り消し済みです / broadcast {broadcast_id} "
                f"was already cancelled"
            )
        active = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 "
            "AND state IN ('queued', 'deferred', 'sending')",
            broadcast_id,
        )
        if not active:
            raise InputError(
                f"配信 {broadcast_id} は送信を終えています。取り消すものはありません / "
                f"broadcast {broadcast_id} has finished: nothing is left to cancel"
            )
        await conn.execute(
            "UPDATE broadcasts SET cancelled_at = $2 WHERE id = $1", broadcast_id, now
        )
        stopped: str = await conn.execute(STOP_SQL, broadcast_id, now, CANCELLED_TEXT)
        by_state = {s: 0 for s in State}
        for c in await conn.fetch(STATE_COUNTS_SQL, [broadcast_id]):
            by_state[State(c["state"])] = c["n"]
        # Delivered at commit: the runners holding leased rows of it drop them.
        await conn.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(broadcast_id))
    return Cancellation(
        broadcast_id=broadcast_id,
        cancelled=int(stopped.split()[-1]),
        in_flight=by_state[State.SENDING],
        delivered=by_state[State.DELIVERED],
        failed=by_state[State.FAILED] - int(stopped.split()[-1]),
    )


async def cancelled_among(pool: asyncpg.Pool, ids: Sequence[int]) -> set[int]:
    """Those of the broadcasts ``ids`` that are cancelled."""
    if not ids:
        return set()
    rows = await pool.fetch(
        "SELECT id FROM broadcasts WHERE id = ANY($1::bigint[]) AND cancelled_at IS NOT NULL",
        list(ids),
    )
    return {r["id"] for r in rows}


__all__ = [
    "BROADCAST_STATE_LABELS_JA",
    "CANCELLED_LABEL_JA",
    "CANCELLED_TEXT",
    "CANCEL_CHANNEL",
    "REASON_CANCELLED",
    "BroadcastState",
    "BroadcastSummary",
    "Cancellation",
    "cancel",
    "cancelled_among",
    "list_broadcasts",
    "refuse_past_send_at",
    "unique_recipients",
]
