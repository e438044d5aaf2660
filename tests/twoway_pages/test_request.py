"""What a staff request asks of a broadcast (engine/staff/sending.BroadcastRequest): read
confirmation and questions become ``Asks``; requests without them keep their old digest, so an
application's idempotency key made before two-way still finds its broadcast."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from engine.people import Audience
from engine.staff.sending import BroadcastRequest
from engine.twoway import Question, QuestionKind
from engine.twoway.asks import ReadPolicy

BASE = BroadcastRequest("s@example.jp", "件名", "本文", Audience(schools=(1,)))


def test_a_plain_request_asks_nothing_and_keeps_its_digest() -> None:
    assert BASE.asks() is None
    before = json.dumps(
        ["s@example.jp", "件名", "本文", Audience(schools=(1,)).as_json(), "notice", 1, None],
        ensure_ascii=False, sort_keys=True,
    )
    assert BASE.digest() == hashlib.sha256(before.encode("utf-8")).digest()


def test_read_and_questions_become_asks_and_change_the_digest() -> None:
    from dataclasses import replace

    deadline = datetime(2026, 12, 1, tzinfo=UTC)
    q = Question("q", "出欠", QuestionKind.SINGLE, options=("出", "欠"))
    read = replace(BASE, read=ReadPolicy(timedelta(hours=3), 1))
    survey = replace(BASE, questions=(q,), deadline=deadline)
    assert read.asks() is not None and read.asks().personal_page  # type: ignore[union-attr]
    asks = survey.asks()
    assert asks is not None and asks.questions == (q,) and asks.deadline == deadline
    digests = {BASE.digest(), read.digest(), survey.digest(),
               replace(read, read=ReadPolicy(timedelta(hours=3), 2)).digest()}
    assert len(digests) == 4
