"""Surveys on a broadcast: questions, answers until a deadline, totals, per-account answers, CSV.

Staff attach questions and a deadline with ``create_survey``. A guardian's page (reached by a
signed token naming the delivery) shows ``survey_of`` and ``answers_for``, and posts the form to
``submit_answers``: one response per child's account (a family answers once, whichever guardian
answers; the last one wins), or per contact when the delivery was for no account. Answering
again before the deadline replaces the response; at or after it ``SurveyClosed`` is raised
and nothing changes. Free-text answers are sealed at rest.

Staff read ``survey_totals`` (per option, and the sum of number questions: the head count),
``responses`` (each account's answers), ``survey_csv`` (UTF-8 with BOM, for Excel) and
``unanswered_deliveries`` (whom to remind; the sender then calls ``reads.mark_reminded`` with
purpose ``"survey"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from engine.people.store import ACCOUNT_NAME, People
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.platform.sealing import RECIPIENT
from engine.twoway.csv_out import csv_bytes, csv_cell
from engine.twoway.questions import (
    Answer,
    Question,
    QuestionKind,
    answer_text,
    check_answers,
    check_questions,
    join_answers,
    questions_from_json,
    questions_json,
    split_answers,
)
from engine.twoway.reads import DueReminder

TEXTS = "survey.texts"


class SurveyClosed(InputError):
    """The deadline has passed: answers are refused and nothing changes."""

    def __init__(self, deadline: datetime) -> None:
        self.deadline = deadline
        super().__init__(
            f"回答の受付は {jst(deadline):%m月%d日 %H:%M} に締め切りました。"
            f"(answers closed at {jst(deadline).isoformat(timespec='minutes')})"
        )


@dataclass(frozen=True)
class Survey:
    broadcast_id: int
    deadline: datetime
    questions: tuple[Question, ...]

    def is_open(self, now: datetime) -> bool:
        return now < self.deadline


@dataclass(frozen=True)
class QuestionTotal:
    question: Question
    answered: int
    # Per option index (single and multiple choice).
    options: tuple[int, ...] = ()
    # Sum of the answers (number questions: the head count).
    total: Decimal | None = None


@dataclass(frozen=True)
class SurveyTotals:
    respondents: int
    questions: tuple[QuestionTotal, ...]


@dataclass(frozen=True)
class Response:
    account_id: int | None
    contact_id: int | None
    grade: int | None
    class_name: str | None
    number: int | None
    # The child's name; empty for a response without an account.
    name: str
    answered_at: datetime
    answers: dict[str, Answer]


async def create_survey(
    people: People,
    broadcast_id: int,
    questions: Sequence[Question],
    deadline: datetime,
    conn: asyncpg.Connection | None = None,
) -> Survey:
    """Attach questions to a broadcast (InputError, changing nothing, when they are wrong).

    ``conn``: the fan-out's transaction, as for ``reads.request_read``.
    """
    if not questions:
        raise InputError("質問がありません (a survey needs at least one question)")
    check_questions(questions)
    if deadline <= people.clock.now():
        raise InputError("締め切りが過去です (the deadline has already passed)")
    try:
        await (conn or people.pool).execute(
            "INSERT INTO surveys (broadcast_id, deadline, questions, created_at) "
            "VALUES ($1, $2, $3::jsonb, $4)",
            broadcast_id, deadline, questions_json(questions), people.clock.now(),
        )
    except asyncpg.ForeignKeyViolationError:
        raise InputError(f"配信 {broadcast_id} がありません (no such broadcast)") from None
    except asyncpg.UniqueViolationError:
        raise InputError(
            f"配信 {broadcast_id} にはもう質問があります (the broadcast has a survey already)"
        ) from None
    return Survey(broadcast_id, deadline, tuple(questions))


async def survey_of(people: People, broadcast_id: int) -> Survey | None:
    row = await people.pool.fetchrow(
        "SELECT deadline, questions FROM surveys WHERE broadcast_id = $1", broadcast_id
    )
    if row is None:
        return None
    return Survey(broadcast_id, row["deadline"], tuple(questions_from_json(row["questions"])))


async def _respondent(
    conn: asyncpg.Connection | asyncpg.Pool, delivery_id: int, account_id: int | None
) -> tuple[int, int, int | None]:
    """(broadcast, contact, account) answering through this delivery, or InputError."""
    row = await conn.fetchrow(
        "SELECT dc.broadcast_id, dc.contact_id, "
        "array_agg(da.account_id) FILTER (WHERE da.account_id IS NOT NULL) AS accounts "
        "FROM delivery_contacts dc LEFT JOIN delivery_accounts da "
        "ON da.delivery_id = dc.delivery_id WHERE dc.delivery_id = $1 "
        "GROUP BY dc.broadcast_id, dc.contact_id",
        delivery_id,
    )
    if row is None:
        raise InputError("この宛先からは回答できません (this mail cannot be answered)")
    accounts: list[int] = row["accounts"] or []
    if account_id is None:
        if len(accounts) > 1:
            raise InputError("お子さまを選んでください (choose the child you answer for)")
        account_id = accounts[0] if accounts else None
    elif account_id not in accounts:
        # Another family's child, or a made-up id: nothing is said about which.
        raise InputError("このお子さまについては回答できません (not a child of this mail)")
    return row["broadcast_id"], row["contact_id"], account_id


async def submit_answers(
    people: People,
    delivery_id: int,
    form: Mapping[str, str | Sequence[str]],
    account_id: int | None = None,
) -> datetime:
    """Store (or replace) the answers given through a delivery's page; return the time stored.

    ``account_id`` picks the child when the delivery was for several. Raises SurveyClosed at or
    after the deadline, AnswerError for answers that do not fit, InputError otherwise; every
    refusal changes nothing.
    """
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        broadcast_id, contact_id, account = await _respondent(conn, delivery_id, account_id)
        survey = await survey_of(people, broadcast_id)
        if survey is None:
            raise InputError("このお知らせには質問がありません (this mail has no questions)")
        if not survey.is_open(now):
            raise SurveyClosed(survey.deadline)
        clear, texts = split_answers(check_answers(survey.questions, form))
        sealed = people.sealer.seal(json.dumps(texts, ensure_ascii=False), TEXTS) if texts else None
        target = "(broadcast_id, account_id) WHERE account_id IS NOT NULL"
        if account is None:
            target = "(broadcast_id, contact_id) WHERE account_id IS NULL"
        await conn.execute(
            "INSERT INTO survey_responses "
            "(broadcast_id, account_id, contact_id, answers, text_sealed, answered_at) "
            f"VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT {target} DO UPDATE "
            "SET contact_id = EXCLUDED.contact_id, answers = EXCLUDED.answers, "
            "text_sealed = EXCLUDED.text_sealed, answered_at = EXCLUDED.answered_at",
            broadcast_id, account, contact_id, json.dumps(clear), sealed, now,
        )
    return now


async def answers_for(
    people: People, delivery_id: int, account_id: int | None = None
) -> dict[str, Answer]:
    """The answers stored for the respondent of this delivery (to fill the page's form)."""
    broadcast_id, contact_id, account = await _respondent(people.pool, delivery_id, account_id)
    survey = await survey_of(people, broadcast_id)
    if survey is None:
        return {}
    row = await people.pool.fetchrow(
        "SELECT answers, text_sealed FROM survey_responses WHERE broadcast_id = $1 AND "
        "CASE WHEN $2::bigint IS NULL THEN account_id IS NULL AND contact_id = $3 "
        "ELSE account_id = $2 END",
        broadcast_id, account, contact_id,
    )
    if row is None:
        return {}
    return _typed(people, survey, row["answers"], row["text_sealed"])


def _typed(
    people: People, survey: Survey, answers: str, text_sealed: bytes | None
) -> dict[str, Answer]:
    texts = json.loads(people.sealer.open(text_sealed, TEXTS)) if text_sealed else {}
    return join_answers(survey.questions, json.loads(answers), texts)


async def survey_totals(people: People, broadcast_id: int) -> SurveyTotals:
    """Respondents, answers per option, and the sum of each number question."""
    survey = await _need(people, broadcast_id)
    respondents: int = await people.pool.fetchval(
        "SELECT count(*) FROM survey_responses WHERE broadcast_id = $1", broadcast_id
    )
    out: list[QuestionTotal] = []
    for q in survey.questions:
        answered: int = await people.pool.fetchval(
            "SELECT count(*) FROM survey_responses WHERE broadcast_id = $1 AND answers ? $2",
            broadcast_id, q.key,
        )
        if q.kind in (QuestionKind.SINGLE, QuestionKind.MULTIPLE):
            rows = await people.pool.fetch(
                "SELECT o::int AS option, count(*) AS n FROM survey_responses s, "
                "jsonb_array_elements_text(CASE jsonb_typeof(s.answers->$2) "
                "WHEN 'array' THEN s.answers->$2 ELSE jsonb_build_array(s.answers->$2) END) o "
                "WHERE s.broadcast_id = $1 AND s.answers ? $2 GROUP BY o",
                broadcast_id, q.key,
            )
            counts = [0] * len(q.options)
            for r in rows:
                counts[r["option"]] = r["n"]
            out.append(QuestionTotal(q, answered, options=tuple(counts)))
        elif q.kind is QuestionKind.NUMBER:
            total: Decimal = await people.pool.fetchval(
                "SELECT coalesce(sum((answers->>$2)::numeric), 0) FROM survey_responses "
                "WHERE broadcast_id = $1 AND answers ? $2",
                broadcast_id, q.key,
            )
            out.append(QuestionTotal(q, answered, total=total))
        else:
            out.append(QuestionTotal(q, answered))
    return SurveyTotals(respondents, tuple(out))


async def _need(people: People, broadcast_id: int) -> Survey:
    survey = await survey_of(people, broadcast_id)
    if survey is None:
        raise InputError(f"配信 {broadcast_id} には質問がありません (the broadcast has no survey)")
    return survey


async def responses(
    people: People, broadcast_id: int, limit: int | None = None, offset: int = 0
) -> list[Response]:
    """Every response with its child (grade, class, number, name), in class order; with
    ``limit`` only that many from ``offset`` (only they are opened)."""
    return (await _responses(people, broadcast_id, limit, offset))[1]


async def response_count_and_page(
    people: People, broadcast_id: int, limit: int, offset: int
) -> tuple[int, list[Response]]:
    """How many responses there are and one page of them, in one statement (names opened
    for the page only)."""
    total, page = await _responses(people, broadcast_id, limit, offset)
    if total is None:  # past the end: no row to carry the count
        total = await people.pool.fetchval(
            "SELECT count(*) FROM survey_responses WHERE broadcast_id = $1", broadcast_id)
    return total, page


async def _responses(
    people: People, broadcast_id: int, limit: int | None, offset: int
) -> tuple[int | None, list[Response]]:
    survey = await _need(people, broadcast_id)
    rows = await people.pool.fetch(
        "SELECT s.account_id, s.contact_id, s.answers, s.text_sealed, s.answered_at, g.grade, "
        "cl.name AS class_name, a.number, a.name_sealed, count(*) OVER () AS total "
        "FROM survey_responses s "
        "LEFT JOIN accounts a ON a.id = s.account_id LEFT JOIN grades g ON g.id = a.grade_id "
        "LEFT JOIN classes cl ON cl.id = a.class_id WHERE s.broadcast_id = $1 "
        "ORDER BY g.grade NULLS LAST, cl.name NULLS LAST, a.number NULLS LAST, s.id "
        "LIMIT $2 OFFSET $3",
        broadcast_id, limit, offset,
    )
    return rows[0]["total"] if rows else None, [
        Response(
            r["account_id"], r["contact_id"], r["grade"], r["class_name"], r["number"],
            people.sealer.open(r["name_sealed"], ACCOUNT_NAME) if r["name_sealed"] else "",
            r["answered_at"], _typed(people, survey, r["answers"], r["text_sealed"]),
        )
        for r in rows
    ]


async def survey_csv(people: People, broadcast_id: int) -> bytes:
    """Each response as a CSV row (UTF-8 with BOM so Excel opens it as Japanese)."""
    survey = await _need(people, broadcast_id)
    header = ["学年", "組", "番号", "氏名", "回答日時", *(q.label for q in survey.questions)]
    rows = [
        [
            "" if r.grade is None else r.grade, r.class_name or "",
            "" if r.number is None else r.number, csv_cell(r.name),
            f"{jst(r.answered_at):%Y-%m-%d %H:%M}",
            *(csv_cell(answer_text(q, r.answers.get(q.key))) for q in survey.questions),
        ]
        for r in await responses(people, broadcast_id)
    ]
    return csv_bytes(header, rows)


async def unanswered_deliveries(people: People, broadcast_id: int) -> list[DueReminder]:
    """Delivered deliveries whose respondent has not answered: a child of theirs without a
    response, or (for a delivery for no account) the contact without one."""
    rows = await people.pool.fetch(
        "SELECT d.id, d.broadcast_id, d.recipient_sealed, coalesce(m.reminders, 0) AS sent "
        "FROM deliveries d JOIN delivery_contacts dc ON dc.delivery_id = d.id "
        "JOIN contacts c ON c.id = dc.contact_id AND c.state = 'active' "
        "LEFT JOIN delivery_reminders m ON m.delivery_id = d.id AND m.purpose = 'survey' "
        "WHERE d.broadcast_id = $1 AND d.state = 'delivered' AND CASE "
        "WHEN EXISTS (SELECT 1 FROM delivery_accounts da WHERE da.delivery_id = d.id) "
        "THEN EXISTS (SELECT 1 FROM delivery_accounts da WHERE da.delivery_id = d.id AND NOT "
        "  EXISTS (SELECT 1 FROM survey_responses s WHERE s.broadcast_id = $1 "
        "          AND s.account_id = da.account_id)) "
        "ELSE NOT EXISTS (SELECT 1 FROM survey_responses s WHERE s.broadcast_id = $1 "
        "  AND s.account_id IS NULL AND s.contact_id = dc.contact_id) END "
        "ORDER BY d.id",
        broadcast_id,
    )
    return [
        DueReminder(
            r["id"], r["broadcast_id"], people.sealer.open(r["recipient_sealed"], RECIPIENT),
            r["sent"],
        )
        for r in rows
    ]
