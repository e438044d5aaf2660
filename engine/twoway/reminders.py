"""Reminders sent by staff: who has not read or answered, and which first mail each reminder
delivery stands for.

A reminder is a new broadcast (engine/staff/reminding.py) whose mails link to the personal
page. Its deliveries are tied here to the delivery of the first broadcast with the same
address (``link_reminder``, in the reminder's creating transaction), so the page reached
through a reminder records the read and the answers on the first broadcast:

    delivery_id = await page_delivery(pool, token_delivery_id)   # the page calls this first

``unread_deliveries`` is the read-confirmation twin of ``surveys.unanswered_deliveries``: the
delivered mails of the broadcast not read yet, to contacts that have not left.
"""

from __future__ import annotations

import asyncpg

from engine.people.store import People
from engine.twoway.reads import DueReminder


async def unread_deliveries(people: People, broadcast_id: int) -> list[DueReminder]:
    """Delivered deliveries of the broadcast without a read, to contacts still active."""
    rows = await people.pool.fetch(
        "SELECT d.id, d.broadcast_id, d.recipient, coalesce(m.reminders, 0) AS sent "
        "FROM deliveries d "
        "LEFT JOIN delivery_reads r ON r.delivery_id = d.id "
        "LEFT JOIN delivery_reminders m ON m.delivery_id = d.id AND m.purpose = 'read' "
        "LEFT JOIN delivery_contacts dc ON dc.delivery_id = d.id "
        "LEFT JOIN contacts c ON c.id = dc.contact_id "
        "WHERE d.broadcast_id = $1 AND d.state = 'delivered' AND r.delivery_id IS NULL "
        "AND (c.state IS NULL OR c.state = 'active') ORDER BY d.id",
        broadcast_id,
    )
    return [DueReminder(r["id"], r["broadcast_id"], r["recipient"], r["sent"]) for r in rows]


async def link_reminder(conn: asyncpg.Connection, reminder_id: int, first_id: int) -> int:
    """Tie each delivery of the reminder to the first broadcast's delivery to the same address;
    return how many were tied."""
    result: str = await conn.execute(
        "INSERT INTO reminder_deliveries (delivery_id, reminds) "
        "SELECT r.id, f.id FROM deliveries r JOIN deliveries f "
        "ON f.broadcast_id = $2 AND f.recipient = r.recipient "
        "WHERE r.broadcast_id = $1 ON CONFLICT DO NOTHING",
        reminder_id, first_id,
    )
    return int(result.split()[-1])


async def page_delivery(db: asyncpg.Pool | asyncpg.Connection, delivery_id: int) -> int:
    """The delivery whose page a link names: the first mail's for a reminder, else itself."""
    first: int | None = await db.fetchval(
        "SELECT reminds FROM reminder_deliveries WHERE delivery_id = $1", delivery_id
    )
    return first if first is not None else delivery_id
