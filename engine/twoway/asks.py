"""What a new broadcast asks of its recipients: read confirmation, questions, or being a reminder.

``send_broadcast(..., asks=Asks(...))`` checks it before anything is stored and applies it in
the fan-out's transaction, so no runner renders a mail of the broadcast before it is known to
link to the personal page (``broadcasts.personal_page``, set by the fan-out from
``Asks.personal_page``).

    asks = Asks(read=ReadPolicy(timedelta(hours=2), 2), questions=(q1, q2), deadline=t)
    asks.check(now)                               # InputError, nothing stored
    check_way_back(asks, settings.http.public_url)  # no link to answer through: refused
    await asks.apply(conn, people, broadcast_id)  # inside the fan-out's transaction
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.people.store import People
from engine.platform.errors import InputError
from engine.twoway.questions import Question, check_questions
from engine.twoway.reads import mark_reminded, request_read
from engine.twoway.surveys import create_survey

DEFAULT_REMIND_AFTER = timedelta(hours=2)
DEFAULT_REMINDERS = 2
# The staff API says the same in minutes (admin_api/staff/schemas.ReadConfirmationIn).
MIN_REMIND_AFTER = timedelta(minutes=1)
MAX_REMIND_AFTER = timedelta(days=14)


@dataclass(frozen=True)
class ReadPolicy:
    """Read confirmation: remind the unread after ``remind_after``, at most ``max_reminders``."""

    remind_after: timedelta = DEFAULT_REMIND_AFTER
    max_reminders: int = DEFAULT_REMINDERS


@dataclass(frozen=True)
class ReminderOf:
    """This broadcast reminds the recipients of ``original_id`` behind ``delivery_ids``."""

    original_id: int
    delivery_ids: tuple[int, ...]
    purpose: str = "read"


@dataclass(frozen=True)
class Asks:
    read: ReadPolicy | None = None
    questions: tuple[Question, ...] = ()
    deadline: datetime | None = None
    reminder: ReminderOf | None = None

    @property
    def personal_page(self) -> bool:
        """Whether the broadcast's mails link to each recipient's personal page."""
        return self.read is not None or bool(self.questions) or self.reminder is not None

    def check(self, now: datetime) -> None:
        """InputError (Japanese, then English) when the request cannot be stored."""
        if self.read is not None:
            if not MIN_REMIND_AFTER <= self.read.remind_after <= MAX_REMIND_AFTER:
                raise InputError(
                    "再通知までの時間は 1 分〜14 日にしてください "
                    "(remind_after must be 1 minute to 14 days)"
                )
            if not 0 <= self.read.max_reminders <= 10:
                raise InputError("再通知は 0〜10 回にしてください (reminders must be 0 to 10)")
        if self.questions:
            check_questions(self.questions)
            if self.deadline is None:
                raise InputError("回答の締め切りを指定してください (questions need a deadline)")
            if self.deadline <= now:
                raise InputError("締め切りが過去です (the deadline has already passed)")
        elif self.deadline is not None:
            raise InputError("締め切りは質問と一緒に指定します (a deadline needs questions)")

    async def apply(self, conn: asyncpg.Connection, people: People, broadcast_id: int) -> None:
        """Store what the broadcast asks, in the fan-out's transaction (after linking)."""
        if self.read is not None:
            await request_read(
                people, broadcast_id, self.read.remind_after, self.read.max_reminders, conn=conn
            )
        if self.questions and self.deadline is not None:
            await create_survey(people, broadcast_id, self.questions, self.deadline, conn=conn)
        if self.reminder is not None:
            await _link_reminder(conn, people, broadcast_id, self.reminder)


class NoWayBack(InputError):
    """The broadcast asks something but its mails could carry no link to answer through."""


NO_WAY_BACK = (
    "既読確認・アンケートのある配信には、回答用のリンクを載せるための [http] public_url "
    "（このサーバーを外から開くアドレス）の設定が必要です。設定するまで、このような配信は"
    "受け付けません。 (read confirmation or questions need [http] public_url: without it the "
    "mails would carry no link to answer through)"
)


def check_way_back(asks: Asks | None, public_url: str) -> None:
    """``NoWayBack`` when ``asks`` needs the personal page and there is no ``public_url``:
    such a broadcast is never stored, so it is never sent without its link. The one check
    the staff API, the screens and ``mamoru send`` share."""
    if asks is not None and asks.personal_page and not public_url.strip():
        raise NoWayBack(NO_WAY_BACK)


async def _link_reminder(
    conn: asyncpg.Connection, people: People, broadcast_id: int, of: ReminderOf
) -> None:
    """Tie each reminder delivery to the first broadcast's delivery to the same recipient, and
    count the reminder, so that its page records reads and answers against the first one."""
    now = people.clock.now()
    await conn.execute(
        "INSERT INTO reminder_broadcasts (broadcast_id, original_id, created_at) "
        "VALUES ($1, $2, $3)",
        broadcast_id, of.original_id, now,
    )
    await conn.execute(
        "INSERT INTO reminder_deliveries (delivery_id, original_delivery_id) "
        "SELECT n.id, o.id FROM deliveries o JOIN deliveries n "
        "ON n.broadcast_id = $1 AND n.recipient_hash = o.recipient_hash "
        "WHERE o.id = ANY($2::bigint[]) AND o.broadcast_id = $3 ON CONFLICT DO NOTHING",
        broadcast_id, list(of.delivery_ids), of.original_id,
    )
    await mark_reminded(conn, of.purpose, list(of.delivery_ids), now)
