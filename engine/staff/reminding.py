"""Reminders staff send by hand: "remind those who have not read / not answered".

A reminder is a new broadcast linked to the first (``resend_of``, like a resend), to the
addresses of the first whose mail was delivered and is not read (purpose ``read``) or whose
children have no answer yet (purpose ``survey``), skipping contacts that left. It is made like
the minute task's automatic read reminders (engine/twoway/reminders.py): the fan-out applies
``Asks(reminder=ReminderOf(...))``, so its mails link to each recipient's personal page and
each of its deliveries is tied to the first broadcast's delivery (``reminder_deliveries``): a
read or an answer made through the reminder counts for the first broadcast. Everything — the
broadcast, its owner, the ties and the reminder counts — commits together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.people import Audience, Category, People
from engine.people.contacts import left_among
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue
from engine.staff.follow import visible_broadcast
from engine.staff.models import Principal
from engine.staff.sending import Created, owner_row
from engine.staff.store import Staff
from engine.twoway import send_broadcast
from engine.twoway.asks import Asks, ReminderOf, check_way_back
from engine.twoway.reads import DueReminder, unread_deliveries
from engine.twoway.reminders import INTRO, SUBJECT_MARK, reminder_subject
from engine.twoway.surveys import survey_of, unanswered_deliveries

PURPOSES = ("read", "survey")

# A read reminder staff send reads as the automatic one (engine/twoway/reminders.py).
_TEXT = {
    "read": (SUBJECT_MARK, INTRO),
    "survey": ("【回答のお願い】",
               "先日お送りしたアンケートに、まだ回答いただいていないようです。\n"
               "お手数ですが、下のリンクから回答をお願いします。\n\n"),
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
        asked = await people.pool.fetchval(
            "SELECT 1 FROM read_requests WHERE broadcast_id = $1", broadcast_id
        )
        if asked is None:
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
    new_subject = (subject or reminder_subject(content.subject, mark)).strip()
    if not new_subject or "\n" in new_subject or "\r" in new_subject:
        raise InputError("件名を 1 行で入れてください (a one-line subject)")
    broadcast = NewBroadcast(
        sender=content.sender, subject=new_subject, body=body or f"{text}{content.body}",
        recipients=[t.recipient for t in targets], priority=content.priority,
        sender_name=content.sender_name, reply_to=content.reply_to,
    )
    # The owner row is written exactly as a resend writes it.
    owner = owner_row(actor, now, resend_of=broadcast_id, organisation_id=first.organisation_id)
    asks = Asks(reminder=ReminderOf(broadcast_id, tuple(t.delivery_id for t in targets), purpose))
    check_way_back(asks, staff.public_url)
    fan = await send_broadcast(
        people, queue, broadcast, Audience(), Category(first.category), max_age, within=owner,
        asks=asks,
    )
    return Reminder(Created(fan.broadcast_id, fan.recipients, False, fan.summary_ja()), len(left))
