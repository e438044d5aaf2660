"""Reminders staff send by hand: "remind those who have not read / not answered".

A reminder is a new broadcast linked to the first (``resend_of``, like a resend), to the
addresses of the first whose mail was delivered and is not read (purpose ``read``) or whose
children have no answer yet (purpose ``survey``), skipping contacts that left. Its mails link
to each recipient's personal page (``broadcasts.personal_page``), and each of its deliveries is
tied to the first broadcast's delivery (``twoway.reminders.link_reminder``), so a read or an
answer made through the reminder counts for the first broadcast. Everything — the broadcast,
its owner, the page flag, the ties and the reminder counts — commits together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from engine.errors import InputError
from engine.people import Audience, Category, People, send_broadcast
from engine.people.contacts import left_among
from engine.queue import NewBroadcast, Queue
from engine.staff.follow import visible_broadcast
from engine.staff.models import Principal

# The owner row is written exactly as a resend writes it; sending.py keeps that statement.
from engine.staff.sending import Created, _owner_row
from engine.staff.store import Staff
from engine.twoway.reads import DueReminder, mark_reminded
from engine.twoway.reminders import link_reminder, unread_deliveries
from engine.twoway.surveys import survey_of, unanswered_deliveries

PURPOSES = ("read", "survey")

_TEXT = {
    "read": ("【再通知】", "先日お送りしたお知らせを、まだ確認いただいていないようです。\n"
             "お手数ですが、下のリンクから内容をご確認のうえ「確認しました」を押してください。\n"),
    "survey": ("【回答のお願い】",
               "先日お送りしたアンケートに、まだ回答いただいていないようです。\n"
               "お手数ですが、下のリンクから回答をお願いします。\n"),
}


@dataclass(frozen=True)
class Reminder:
    created: Created
    # Addresses that had not read / answered but left since: not sent to.
    left: int


async def remind(
    staff: Staff,
    people: People,
    queue: Queue,
    actor: Principal,
    broadcast_id: int,
    purpose: str,
    max_age: float,
    subject: str | None = None,
    body: str | None = None,
) -> Reminder:
    """Send the reminder (InputError, sending nothing, when there is nobody to remind)."""
    if purpose not in PURPOSES:
        raise InputError("purpose は read か survey です (purpose must be read or survey)")
    now = staff.now()
    first = await visible_broadcast(staff.pool, actor, broadcast_id, now)
    targets: list[DueReminder]
    if purpose == "survey":
        if await survey_of(people, broadcast_id) is None:
            raise InputError("この配信には質問がありません (the broadcast has no survey)")
        targets = await unanswered_deliveries(people, broadcast_id)
    else:
        asks = await people.pool.fetchval(
            "SELECT 1 FROM read_requests WHERE broadcast_id = $1", broadcast_id
        )
        if asks is None:
            raise InputError(
                "この配信は既読確認を求めていません (the broadcast asks for no read confirmation)"
            )
        targets = await unread_deliveries(people, broadcast_id)
    left = await left_among(people, [t.recipient for t in targets])
    targets = [t for t in targets if t.recipient not in left]
    if not targets:
        raise InputError("再通知する宛先がありません (everyone has read or answered)")
    content = (await queue.broadcast_contents([broadcast_id]))[broadcast_id]
    mark, text = _TEXT[purpose]
    new_subject = (subject or f"{mark}{content.subject}").strip()
    if not new_subject or "\n" in new_subject or "\r" in new_subject:
        raise InputError("件名を 1 行で入れてください (a one-line subject)")
    broadcast = NewBroadcast(
        sender=content.sender, subject=new_subject, body=body or f"{text}\n{content.body}",
        recipients=[t.recipient for t in targets], priority=content.priority,
        sender_name=content.sender_name, reply_to=content.reply_to,
    )
    owner = _owner_row(actor, now, resend_of=broadcast_id, organisation_id=first.organisation_id)

    async def within(conn: asyncpg.Connection, new_id: int) -> None:
        await owner(conn, new_id)
        await conn.execute("UPDATE broadcasts SET personal_page = true WHERE id = $1", new_id)
        await link_reminder(conn, new_id, broadcast_id)
        await mark_reminded(conn, purpose, [t.delivery_id for t in targets], now)

    fan = await send_broadcast(
        people, queue, broadcast, Audience(), Category(first.category), max_age, within=within
    )
    return Reminder(Created(fan.broadcast_id, fan.recipients, False, fan.summary_ja()), len(left))
