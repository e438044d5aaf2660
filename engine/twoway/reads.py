"""Read confirmation: asking for it, recording a click, who has read per class, reminders due.

A broadcast asks for confirmation with ``request_read`` (after how long to remind, how many
times at most). A guardian's 「確認しました」link names a delivery (a signed token, purpose
``"read"``, engine/message/links.py); the page verifies the token and calls ``record_read``:
the first click is kept, later ones change nothing. A child's account counts as read when any of the
deliveries made for it (any of its guardians' addresses) has been read.

Reminders are per delivery: ``due_read_reminders`` lists the deliveries that were delivered,
are not read, were reminded fewer times than the limit, and whose last mail (the delivery, or
the last reminder) is at least ``remind_after`` old. Whoever sends the reminder mails calls
``mark_reminded`` for the deliveries it enqueued, in the same transaction as the enqueue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.people.store import ACCOUNT_NAME, People
from engine.platform.errors import InputError
from engine.platform.sealing import RECIPIENT


@dataclass(frozen=True)
class ClassReads:
    """Read counts of one class (``class_id`` None: accounts without a class, such as staff)."""

    class_id: int | None
    grade: int | None
    class_name: str | None
    accounts: int
    read: int

    @property
    def unread(self) -> int:
        return self.accounts - self.read


@dataclass(frozen=True)
class AccountRead:
    account_id: int
    class_id: int | None
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    # The first read by any of the account's contacts; None: not read.
    read_at: datetime | None


@dataclass(frozen=True)
class DueReminder:
    delivery_id: int
    broadcast_id: int
    recipient: str
    # Reminders already sent for this delivery.
    sent: int


async def request_read(
    people: People,
    broadcast_id: int,
    remind_after: timedelta,
    max_reminders: int,
    conn: asyncpg.Connection | None = None,
) -> None:
    """Make the broadcast ask for read confirmation (again: the policy is replaced).

    ``conn``: the fan-out's transaction, so that no runner renders a mail of the broadcast
    before it is known to ask for confirmation.
    """
    if remind_after <= timedelta(0):
        raise InputError("再通知までの時間は正にしてください (remind_after must be positive)")
    if not 0 <= max_reminders <= 10:
        raise InputError("再通知は 0〜10 回にしてください (max_reminders must be 0 to 10)")
    try:
        await (conn or people.pool).execute(
            "INSERT INTO read_requests (broadcast_id, remind_after, max_reminders, created_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (broadcast_id) DO UPDATE "
            "SET remind_after = EXCLUDED.remind_after, max_reminders = EXCLUDED.max_reminders",
            broadcast_id, remind_after, max_reminders, people.clock.now(),
        )
    except asyncpg.ForeignKeyViolationError:
        raise InputError(f"配信 {broadcast_id} がありません (no such broadcast)") from None


async def asks_read(people: People, broadcast_id: int) -> bool:
    """Whether the broadcast asked for read confirmation (the staff screens offer "remind the
    unread" only then)."""
    return await people.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM read_requests WHERE broadcast_id = $1)", broadcast_id
    ) is True


async def record_read(people: People, delivery_id: int) -> datetime:
    """Record the delivery's read (first click wins); return the recorded read time.

    Raises InputError, changing nothing, when the delivery does not exist or its broadcast did
    not ask for confirmation.
    """
    now = people.clock.now()
    row = await people.pool.fetchrow(
        "WITH d AS (SELECT d.id, d.broadcast_id FROM deliveries d "
        "  JOIN read_requests rr ON rr.broadcast_id = d.broadcast_id WHERE d.id = $1), "
        "ins AS (INSERT INTO delivery_reads (delivery_id, broadcast_id, read_at) "
        "  SELECT id, broadcast_id, $2 FROM d ON CONFLICT (delivery_id) DO NOTHING "
        "  RETURNING read_at) "
        "SELECT (SELECT read_at FROM ins) AS new, "
        "  (SELECT read_at FROM delivery_reads WHERE delivery_id = $1) AS old, "
        "  EXISTS (SELECT 1 FROM d) AS known",
        delivery_id, now,
    )
    assert row is not None
    if not row["known"]:
        raise InputError(
            "このお知らせには確認の依頼がありません (no read confirmation for this mail)"
        )
    read_at: datetime | None = row["new"] or row["old"]
    if read_at is None:
        # Two first clicks at once: the other one's insert won after this statement's snapshot.
        read_at = await people.pool.fetchval(
            "SELECT read_at FROM delivery_reads WHERE delivery_id = $1", delivery_id
        )
    assert read_at is not None
    return read_at


async def read_by_class(people: People, broadcast_id: int) -> list[ClassReads]:
    """Accounts the broadcast was for and how many have read, per class (grade, class order)."""
    rows = await people.pool.fetch(
        _PER_ACCOUNT_SQL.format(
            select="a.class_id, g.grade, cl.name AS class_name, count(*) AS accounts, "
            "count(*) FILTER (WHERE r.read_at IS NOT NULL) AS read",
            group="GROUP BY a.class_id, g.grade, cl.name ORDER BY g.grade NULLS LAST, "
            "cl.name NULLS LAST",
        ),
        broadcast_id, None,
    )
    return [
        ClassReads(r["class_id"], r["grade"], r["class_name"], r["accounts"], r["read"])
        for r in rows
    ]


async def read_list(
    people: People, broadcast_id: int, class_id: int | None = None
) -> list[AccountRead]:
    """Each account of the broadcast (of one class, if given) with its first read time."""
    rows = await people.pool.fetch(
        _PER_ACCOUNT_SQL.format(
            select="a.id, a.class_id, g.grade, cl.name AS class_name, a.number, "
            "a.name_sealed, r.read_at",
            group="ORDER BY g.grade NULLS LAST, cl.name NULLS LAST, a.number NULLS LAST, a.id",
        ),
        broadcast_id, class_id,
    )
    open_ = people.sealer.open
    return [
        AccountRead(
            r["id"], r["class_id"], r["grade"], r["class_name"], r["number"],
            open_(r["name_sealed"], ACCOUNT_NAME), r["read_at"],
        )
        for r in rows
    ]


# One row per account of the broadcast with its earliest read among its deliveries.
_PER_ACCOUNT_SQL = """
WITH acc AS (
    SELECT da.account_id, min(dr.read_at) AS read_at
    FROM delivery_accounts da
    LEFT JOIN delivery_reads dr ON dr.delivery_id = da.delivery_id
    WHERE da.broadcast_id = $1
    GROUP BY da.account_id
)
SELECT {select}
FROM acc r
JOIN accounts a ON a.id = r.account_id
LEFT JOIN grades g ON g.id = a.grade_id
LEFT JOIN classes cl ON cl.id = a.class_id
WHERE $2::bigint IS NULL OR a.class_id = $2
{group}
"""


async def due_read_reminders(
    people: People, now: datetime, broadcast_id: int | None = None
) -> list[DueReminder]:
    """Deliveries owed a read reminder now (of one broadcast, or of all that ask for reads)."""
    rows = await people.pool.fetch(
        "SELECT d.id, d.broadcast_id, d.recipient_sealed, coalesce(m.reminders, 0) AS sent "
        "FROM read_requests rr "
        "JOIN deliveries d ON d.broadcast_id = rr.broadcast_id AND d.state = 'delivered' "
        "LEFT JOIN delivery_reads r ON r.delivery_id = d.id "
        "LEFT JOIN delivery_reminders m ON m.delivery_id = d.id AND m.purpose = 'read' "
        "LEFT JOIN delivery_contacts dc ON dc.delivery_id = d.id "
        "LEFT JOIN contacts c ON c.id = dc.contact_id "
        "WHERE ($1::bigint IS NULL OR rr.broadcast_id = $1) AND r.delivery_id IS NULL "
        "AND (c.state IS NULL OR c.state = 'active') "
        "AND coalesce(m.reminders, 0) < rr.max_reminders "
        "AND coalesce(m.last_reminded_at, d.finished_at) + rr.remind_after <= $2 "
        "ORDER BY d.id",
        broadcast_id, now,
    )
    return _due(people, rows)


async def unread_deliveries(people: People, broadcast_id: int) -> list[DueReminder]:
    """The broadcast's delivered mails not read yet, to contacts still active, whatever the
    reminder policy says: whom a staff member's "remind the unread" goes to."""
    rows = await people.pool.fetch(
        "SELECT d.id, d.broadcast_id, d.recipient_sealed, coalesce(m.reminders, 0) AS sent "
        "FROM deliveries d "
        "LEFT JOIN delivery_reads r ON r.delivery_id = d.id "
        "LEFT JOIN delivery_reminders m ON m.delivery_id = d.id AND m.purpose = 'read' "
        "LEFT JOIN delivery_contacts dc ON dc.delivery_id = d.id "
        "LEFT JOIN contacts c ON c.id = dc.contact_id "
        "WHERE d.broadcast_id = $1 AND d.state = 'delivered' AND r.delivery_id IS NULL "
        "AND (c.state IS NULL OR c.state = 'active') ORDER BY d.id",
        broadcast_id,
    )
    return _due(people, rows)


def _due(people: People, rows: list[asyncpg.Record]) -> list[DueReminder]:
    return [
        DueReminder(
            r["id"], r["broadcast_id"], people.sealer.open(r["recipient_sealed"], RECIPIENT),
            r["sent"],
        )
        for r in rows
    ]


async def mark_reminded(
    conn: asyncpg.Connection | asyncpg.Pool,
    purpose: str,
    delivery_ids: list[int],
    now: datetime,
) -> None:
    """Count one more reminder (``purpose`` "read" or "survey") for each delivery."""
    if purpose not in ("read", "survey"):
        raise InputError(f"unknown reminder purpose {purpose!r}")
    await conn.execute(
        "INSERT INTO delivery_reminders "
        "(delivery_id, purpose, broadcast_id, reminders, last_reminded_at) "
        "SELECT d.id, $1, d.broadcast_id, 1, $3 FROM deliveries d WHERE d.id = ANY($2::bigint[]) "
        "ON CONFLICT (delivery_id, purpose) DO UPDATE "
        "SET reminders = delivery_reminders.reminders + 1, last_reminded_at = $3",
        purpose, delivery_ids, now,
    )
