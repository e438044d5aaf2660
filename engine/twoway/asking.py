"""What a new broadcast asks of its recipients (read confirmation, questions), checked before
the fan-out and recorded inside its creating transaction.

    check_asking(read, questions, deadline, now)         # InputError before anything is sent
    await attach_asking(conn, people, broadcast_id, read, questions, deadline)   # in the fan-out
    await link_if_asked(people, broadcast_id, read, questions)                  # after commit

``attach_asking`` runs in the fan-out's transaction (``send_broadcast(within=...)``), so no
runner renders a mail of the broadcast before it is known to link to the personal page
(``broadcasts.personal_page``, migration 014) and to ask for reads or answers.

``link_if_asked`` ties the deliveries to contacts and accounts (``link_deliveries``), which the
per-class counts need, **after** the commit: for 30,000 deliveries it takes about as long as the
fan-out itself (bench/twoway.py), and the runners should not wait for it; a click needs no link.
It is idempotent: if the process stops between the two, the next call for the broadcast (e.g.
``link_if_asked`` again, or ``link_deliveries``) adds what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.errors import InputError
from engine.people.store import People
from engine.twoway.questions import Question, check_questions
from engine.twoway.reads import request_read
from engine.twoway.recipients import link_deliveries
from engine.twoway.surveys import create_survey

MAX_REMIND_AFTER = timedelta(days=14)


@dataclass(frozen=True)
class ReadConfirmation:
    """Ask for 「確認しました」: remind after this long, at most this many times."""

    remind_after: timedelta
    max_reminders: int


def check_asking(
    read: ReadConfirmation | None,
    questions: Sequence[Question],
    deadline: datetime | None,
    now: datetime,
) -> None:
    """InputError (in Japanese and English) for a request that cannot be meant."""
    if read is not None:
        if not timedelta(0) < read.remind_after <= MAX_REMIND_AFTER:
            raise InputError("再通知までの時間は 1 分〜14 日にしてください "
                             "(remind_after_minutes must be 1 to 20160)")
        if not 0 <= read.max_reminders <= 10:
            raise InputError("再通知は 0〜10 回にしてください (max_reminders must be 0 to 10)")
    if questions:
        check_questions(questions)
        if deadline is None:
            raise InputError("回答の締め切りを入れてください (questions need answer_deadline)")
        if deadline <= now:
            raise InputError("締め切りが過去です (the answer deadline has already passed)")
    elif deadline is not None:
        raise InputError("質問がないのに締め切りがあります (answer_deadline without questions)")


def asks_anything(
    read: ReadConfirmation | None, questions: Sequence[Question]
) -> bool:
    return read is not None or bool(questions)


async def attach_asking(
    conn: asyncpg.Connection,
    people: People,
    broadcast_id: int,
    read: ReadConfirmation | None,
    questions: Sequence[Question],
    deadline: datetime | None,
) -> None:
    """Record what the broadcast asks (nothing when it asks nothing), in ``conn``'s
    transaction."""
    if not asks_anything(read, questions):
        return
    await conn.execute("UPDATE broadcasts SET personal_page = true WHERE id = $1", broadcast_id)
    if read is not None:
        await request_read(people, broadcast_id, read.remind_after, read.max_reminders, conn)
    if questions:
        assert deadline is not None  # check_asking ran first
        await create_survey(people, broadcast_id, questions, deadline, conn)


async def link_if_asked(
    people: People, broadcast_id: int, read: ReadConfirmation | None,
    questions: Sequence[Question],
) -> int:
    """Link the broadcast's deliveries when it asks for anything; return the number linked."""
    if not asks_anything(read, questions):
        return 0
    return await link_deliveries(people.pool, people, broadcast_id)
