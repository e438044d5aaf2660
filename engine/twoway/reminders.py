"""Read reminders: each broadcast's due deliveries get one reminder broadcast, linked back.

``mamoru serve`` calls ``send_due_reminders`` every minute (cli/services.py). For each
broadcast with deliveries owed a reminder (``reads.due_read_reminders``: delivered, unread,
under the limit, ``remind_after`` since the delivery or the last reminder) it fans out one new
broadcast to those addresses: the same sender, priority and category, the subject marked as a
reminder, and a personal page link that records the read against the first broadcast
(``asks.ReminderOf``). The reminder and its count commit together, so a crash sends a reminder
again at most, never counts one that was not sent.

Reminders are not sent at night (``QUIET`` in Japan time): they stay due and go at its end.
"""

from __future__ import annotations

import logging
from datetime import datetime, time

from engine.people import Audience, Category, People
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue
from engine.twoway.asks import Asks, ReminderOf
from engine.twoway.fanout import send_broadcast
from engine.twoway.reads import DueReminder, due_read_reminders

log = logging.getLogger(__name__)

SUBJECT_MARK = "【再送・確認のお願い】"
INTRO = (
    "まだ「確認しました」が押されていないため、もう一度お送りします。\n"
    "下のリンクを開くと確認済みになります。\n\n"
)
# 21:00-07:00 Japan time: no reminder rings a phone then.
QUIET = (time(21, 0), time(7, 0))
# Held while one serve sends reminders (any 64-bit number no other lock of mamoru uses).
_LOCK = 0x6D616D6F7275_0D


def is_quiet(now: datetime) -> bool:
    t = jst(now).time()
    return t >= QUIET[0] or t < QUIET[1]


async def send_due_reminders(people: People, queue: Queue, max_age: float) -> list[int]:
    """Enqueue the reminders due now; return the reminder broadcasts' ids. Serves on several
    hosts share the database: one of them sends at a time (an advisory lock), the others skip
    this turn, so nobody is reminded twice."""
    now = people.clock.now()
    if is_quiet(now):
        return []
    # A transaction's lock: released by its end whatever happens (engine/platform/db.py keeps no
    # session state on pooled connections).
    async with people.pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return []
        return await _send(people, queue, max_age, now)


async def _send(people: People, queue: Queue, max_age: float, now: datetime) -> list[int]:
    by_broadcast: dict[int, list[DueReminder]] = {}
    for one in await due_read_reminders(people, now):
        by_broadcast.setdefault(one.broadcast_id, []).append(one)
    if not by_broadcast:
        return []
    contents = await queue.broadcast_contents(list(by_broadcast))
    sent: list[int] = []
    for broadcast_id, due in by_broadcast.items():
        content = contents[broadcast_id]
        category = await people.pool.fetchval(
            "SELECT category FROM broadcasts WHERE id = $1", broadcast_id
        )
        reminder = NewBroadcast(
            sender=content.sender, subject=reminder_subject(content.subject),
            body=INTRO + content.body, recipients=[d.recipient for d in due],
            priority=content.priority, sender_name=content.sender_name,
            reply_to=content.reply_to,
        )
        asks = Asks(reminder=ReminderOf(broadcast_id, tuple(d.delivery_id for d in due)))
        try:
            fan = await send_broadcast(
                people, queue, reminder, Audience(), Category(category or "notice"), max_age,
                asks=asks,
            )
        except InputError as exc:
            log.warning("reminder for broadcast %d not sent: %s", broadcast_id, exc)
            continue
        log.info("reminder %d for broadcast %d: %d recipients", fan.broadcast_id, broadcast_id,
                 fan.recipients)
        sent.append(fan.broadcast_id)
    return sent


def reminder_subject(subject: str, mark: str = SUBJECT_MARK) -> str:
    """The subject of a reminder of a mail titled ``subject`` (automatic or sent by staff)."""
    if subject.startswith(mark):
        return subject
    # Within the 200 characters staff subjects are held to.
    return (mark + subject)[:200]
