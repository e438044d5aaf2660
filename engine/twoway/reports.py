"""Absence, lateness and early-leave reports (欠席・遅刻・早退) and health notes (健康連絡).

Absence, lateness and early leave are refused for the school's days off (weekends, Japanese
public holidays, its closures: engine.twoway.school_calendar); lateness carries the expected
arrival time and early leave the leaving time (``NewReport.at_time``, stored, listed, in the
CSV). Each school sets, with ``set_report_settings``, the hours (Japan time; the window may
wrap past midnight, e.g. 18:00-08:30) reports are accepted, its list of reasons, and the
questions of its health note (temperature, symptoms: ``engine.twoway.questions``). A
guardian's page calls ``submit_report``, ``correct_report`` or ``withdraw_report`` with the
contact it was reached through (from the signed link); outside the hours ``ReportClosed`` is
raised, and any refusal changes nothing. Each returns the addresses to send the confirmation
to: **every** active, confirmed contact of the child, so that a report made by someone else is
noticed.

Staff screens call ``list_reports`` (filtered by days, grade, class and kind, paged),
``reports_csv`` and ``new_report_count`` (the notification badge). Every staff call takes the
school: a school's staff never see another school's reports. Reasons, notes and health answers
are sealed at rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from engine.people.store import ACCOUNT_NAME, ADDRESS, People
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.twoway.csv_out import csv_bytes, csv_cell
from engine.twoway.questions import (
    Answer,
    Question,
    answer_text,
    check_answers,
    check_questions,
    join_answers,
    questions_from_json,
    questions_json,
    split_answers,
)
from engine.twoway.school_calendar import check_school_days

REASON = "report.reason"
NOTE = "report.note"
ANSWERS = "report.answers"
MAX_DAYS = 31
MAX_AHEAD = timedelta(days=60)
MAX_NOTE = 1000


class ReportKind(StrEnum):
    ABSENCE = "absence"
    LATE = "late"
    EARLY_LEAVE = "early_leave"
    HEALTH = "health"

    @property
    def label_ja(self) -> str:
        return _LABELS[self]


_LABELS = {
    ReportKind.ABSENCE: "欠席", ReportKind.LATE: "遅刻", ReportKind.EARLY_LEAVE: "早退",
    ReportKind.HEALTH: "健康連絡",
}


@dataclass(frozen=True)
class ReportSettings:
    school_id: int
    opens: time
    closes: time
    reasons: tuple[str, ...]
    health_questions: tuple[Question, ...] = ()
    # Questions no longer asked (the screens' 「使わない」): kept so they can be asked again
    # and so earlier notes still show their answers.
    questions_off: tuple[Question, ...] = ()

    @property
    def all_questions(self) -> tuple[Question, ...]:
        """The asked questions, then those no longer asked (for showing stored answers)."""
        return self.health_questions + self.questions_off

    def accepts(self, now: datetime) -> bool:
        """Whether reports are accepted at ``now`` (the window is in Japan time)."""
        t = jst(now).time()
        if self.opens < self.closes:
            return self.opens <= t < self.closes
        return t >= self.opens or t < self.closes


class ReportClosed(InputError):
    """A report outside the school's hours."""

    def __init__(self, settings: ReportSettings) -> None:
        hours = f"{settings.opens:%H:%M}〜{settings.closes:%H:%M}"
        super().__init__(
            f"欠席・遅刻などの連絡は {hours} に受け付けています。いまは受付時間外です。"
            f"学校へ電話でご連絡ください。(reports are accepted {hours} Japan time only)"
        )


@dataclass(frozen=True)
class NewReport:
    account_id: int
    kind: ReportKind
    first_day: date
    last_day: date | None = None
    reason: str | None = None
    note: str = ""
    # Health notes: the form's answers to the school's questions.
    answers: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    # Lateness: the expected arrival; early leave: the leaving time (Japan time). Required
    # for those two kinds, ignored for the others.
    at_time: time | None = None


@dataclass(frozen=True)
class Submitted:
    report_id: int
    # Every active, confirmed contact of the child: the confirmation goes to each.
    confirm_to: list[str]


@dataclass(frozen=True)
class ReportFilter:
    # Reports covering any day from ``first_day`` to ``last_day`` (inclusive).
    first_day: date | None = None
    last_day: date | None = None
    grade_id: int | None = None
    class_id: int | None = None
    kind: ReportKind | None = None
    include_withdrawn: bool = False


@dataclass(frozen=True)
class Report:
    id: int
    account_id: int
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    kind: ReportKind
    first_day: date
    last_day: date
    reason: str | None
    note: str
    answers: dict[str, Answer]
    state: str
    created_at: datetime
    updated_at: datetime
    # 到着予定 (late) or 早退 time (early leave).
    at_time: time | None = None


@dataclass(frozen=True)
class ReportPage:
    total: int
    reports: list[Report]


async def set_report_settings(
    people: People,
    school_id: int,
    opens: time,
    closes: time,
    reasons: Sequence[str],
    health_questions: Sequence[Question] = (),
    questions_off: Sequence[Question] | None = None,
) -> None:
    """Set a school's hours, reasons and health questions (InputError when they are wrong).

    ``questions_off``: the questions no longer asked; None keeps the stored ones except any
    whose key is asked again in ``health_questions`` (the staff API sends the asked ones only).
    """
    clean = [r.strip() for r in reasons if r.strip()]
    if opens == closes:
        raise InputError("受付開始と終了が同じ時刻です (opens and closes are the same time)")
    if not clean or len(set(clean)) != len(clean):
        raise InputError("理由の一覧が空か重複しています (reasons are empty or repeated)")
    check_questions(health_questions)
    off_json: str | None = None
    if questions_off is not None:
        check_questions([*health_questions, *questions_off])
        off_json = questions_json(questions_off)
    try:
        await people.pool.execute(
            "INSERT INTO report_settings (school_id, opens, closes, reasons, health_questions, "
            "health_questions_off, updated_at) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, COALESCE($7::jsonb, '[]'::jsonb), $6) "
            "ON CONFLICT (school_id) DO UPDATE SET "
            "opens = $2, closes = $3, reasons = $4, health_questions = $5::jsonb, "
            "health_questions_off = COALESCE($7::jsonb, (SELECT coalesce(jsonb_agg(q), "
            "  '[]'::jsonb) FROM jsonb_array_elements(report_settings.health_questions_off) q "
            "  WHERE NOT $5::jsonb @> jsonb_build_array(jsonb_build_object('key', q->'key')))), "
            "updated_at = $6",
            school_id, opens, closes, clean, questions_json(health_questions),
            people.clock.now(), off_json,
        )
    except asyncpg.ForeignKeyViolationError:
        raise InputError(f"学校 {school_id} がありません (no such school)") from None


async def report_settings(
    conn: asyncpg.Connection | asyncpg.Pool, school_id: int
) -> ReportSettings | None:
    row = await conn.fetchrow("SELECT * FROM report_settings WHERE school_id = $1", school_id)
    if row is None:
        return None
    return ReportSettings(
        school_id, row["opens"], row["closes"], tuple(row["reasons"]),
        tuple(questions_from_json(row["health_questions"])),
        tuple(questions_from_json(row["health_questions_off"])),
    )


async def _school_open(
    conn: asyncpg.Connection, people: People, contact_id: int, account_id: int
) -> ReportSettings:
    """The child's school's settings, if this contact may report for the child now."""
    school_id = await conn.fetchval(
        "SELECT a.school_id FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id "
        "JOIN contacts c ON c.id = ca.contact_id WHERE ca.contact_id = $1 "
        "AND ca.account_id = $2 AND a.kind = 'child' AND a.state = 'active' "
        "AND c.state = 'active' AND c.confirmed_at IS NOT NULL",
        contact_id, account_id,
    )
    if school_id is None:
        raise InputError("このお子さまについては連絡できません (not a child of this contact)")
    settings = await report_settings(conn, school_id)
    if settings is None:
        raise InputError(
            "この学校はまだ連絡を受け付けていません (this school does not take reports yet)"
        )
    if not settings.accepts(people.clock.now()):
        raise ReportClosed(settings)
    return settings


TIME_NEEDED = {
    ReportKind.LATE: "到着予定の時刻を入れてください (lateness needs the expected arrival time)",
    ReportKind.EARLY_LEAVE: "早退の時刻を入れてください (early leave needs the leaving time)",
}


def _at_time(report: NewReport) -> time | None:
    """The stored time of a report: required for lateness and early leave, else none."""
    if report.kind not in TIME_NEEDED:
        return None
    if report.at_time is None:
        raise InputError(TIME_NEEDED[report.kind])
    if report.last_day not in (None, report.first_day):
        raise InputError(
            "遅刻・早退は 1 日ずつ連絡してください (lateness and early leave are for one day)"
        )
    return report.at_time.replace(second=0, microsecond=0, tzinfo=None)


async def _check_days(
    conn: asyncpg.Connection, settings: ReportSettings, report: NewReport
) -> None:
    """Absence, lateness and early leave only for the school's days (not weekends, public
    holidays or its closures); health notes any day."""
    if report.kind is not ReportKind.HEALTH:
        await check_school_days(
            conn, settings.school_id, report.first_day, report.last_day or report.first_day
        )


def _sealed_fields(
    people: People, settings: ReportSettings, report: NewReport
) -> tuple[date, bytes | None, bytes | None, bytes | None]:
    """(last day, sealed reason, note, answers) of a report that passed every check."""
    today = jst(people.clock.now()).date()
    last = report.last_day or report.first_day
    if report.first_day < today:
        raise InputError("過ぎた日の連絡はできません (the day has already passed)")
    if last < report.first_day:
        raise InputError("終わりの日が始めの日より前です (last day before first day)")
    if (last - report.first_day).days >= MAX_DAYS:
        raise InputError(f"期間は {MAX_DAYS} 日までです (at most {MAX_DAYS} days)")
    if report.first_day > today + MAX_AHEAD:
        raise InputError("60 日より先の連絡はできません (at most 60 days ahead)")
    note = report.note.strip()
    if len(note) > MAX_NOTE:
        raise InputError(f"連絡事項は {MAX_NOTE} 文字までです (note at most {MAX_NOTE} chars)")
    seal = people.sealer.seal
    reason: bytes | None = None
    answers: bytes | None = None
    if report.kind is ReportKind.HEALTH:
        typed = check_answers(settings.health_questions, report.answers)
        clear, texts = split_answers(typed)
        answers = seal(json.dumps({"clear": clear, "texts": texts}, ensure_ascii=False), ANSWERS)
    else:
        if report.reason not in settings.reasons:
            raise InputError("理由を一覧から選んでください (choose a reason from the list)")
        reason = seal(report.reason, REASON)
    return last, reason, seal(note, NOTE) if note else None, answers


async def confirmation_recipients(
    conn: asyncpg.Connection | asyncpg.Pool, people: People, account_id: int
) -> list[str]:
    """Every active, confirmed contact of the child (addresses, sorted)."""
    rows = await conn.fetch(
        "SELECT c.address_sealed FROM contact_accounts ca JOIN contacts c "
        "ON c.id = ca.contact_id WHERE ca.account_id = $1 AND c.state = 'active' "
        "AND c.confirmed_at IS NOT NULL",
        account_id,
    )
    return sorted(people.sealer.open(r["address_sealed"], ADDRESS) for r in rows)


async def submit_report(people: People, contact_id: int, report: NewReport) -> Submitted:
    """Store a new report made by ``contact_id`` (from the page's signed link)."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        settings = await _school_open(conn, people, contact_id, report.account_id)
        last, reason, note, answers = _sealed_fields(people, settings, report)
        at_time = _at_time(report)
        await _check_days(conn, settings, report)
        report_id: int = await conn.fetchval(
            "INSERT INTO attendance_reports (school_id, account_id, contact_id, kind, "
            "first_day, last_day, reason_sealed, note_sealed, answers_sealed, created_at, "
            "updated_at, at_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)"
            " RETURNING id",
            settings.school_id, report.account_id, contact_id, report.kind.value,
            report.first_day, last, reason, note, answers, now, at_time,
        )
        to = await confirmation_recipients(conn, people, report.account_id)
    return Submitted(report_id, to)


async def _own_report(conn: asyncpg.Connection, report_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT account_id, first_day, state FROM attendance_reports WHERE id = $1 FOR UPDATE",
        report_id,
    )
    if row is None or row["state"] != "active":
        raise InputError("この連絡は見つからないか、取り消し済みです (no such report)")
    return row


async def correct_report(
    people: People, contact_id: int, report_id: int, report: NewReport
) -> Submitted:
    """Replace a report (same child) within the hours, while its first day has not passed."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        row = await _own_report(conn, report_id)
        if row["account_id"] != report.account_id:
            raise InputError("この連絡は見つからないか、取り消し済みです (no such report)")
        settings = await _school_open(conn, people, contact_id, report.account_id)
        if row["first_day"] < jst(now).date():
            raise InputError("過ぎた日の連絡は直せません (a past day cannot be changed)")
        last, reason, note, answers = _sealed_fields(people, settings, report)
        at_time = _at_time(report)
        await _check_days(conn, settings, report)
        await conn.execute(
            "UPDATE attendance_reports SET contact_id = $2, kind = $3, first_day = $4, "
            "last_day = $5, reason_sealed = $6, note_sealed = $7, answers_sealed = $8, "
            "updated_at = $9, at_time = $10 WHERE id = $1",
            report_id, contact_id, report.kind.value, report.first_day, last, reason, note,
            answers, now, at_time,
        )
        to = await confirmation_recipients(conn, people, report.account_id)
    return Submitted(report_id, to)


async def withdraw_report(people: People, contact_id: int, report_id: int) -> Submitted:
    """Withdraw a report within the hours, while its first day has not passed."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        row = await _own_report(conn, report_id)
        await _school_open(conn, people, contact_id, row["account_id"])
        if row["first_day"] < jst(now).date():
            raise InputError("過ぎた日の連絡は取り消せません (a past day cannot be withdrawn)")
        await conn.execute(
            "UPDATE attendance_reports SET state = 'withdrawn', contact_id = $2, updated_at = $3 "
            "WHERE id = $1",
            report_id, contact_id, now,
        )
        to = await confirmation_recipients(conn, people, row["account_id"])
    return Submitted(report_id, to)


_LIST_WHERE = """
FROM attendance_reports r JOIN accounts a ON a.id = r.account_id
LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes cl ON cl.id = a.class_id
WHERE r.school_id = $1
  AND ($2::date IS NULL OR r.last_day >= $2) AND ($3::date IS NULL OR r.first_day <= $3)
  AND ($4::bigint IS NULL OR a.grade_id = $4) AND ($5::bigint IS NULL OR a.class_id = $5)
  AND ($6::text IS NULL OR r.kind = $6) AND ($7 OR r.state = 'active')
"""


def _args(school_id: int, f: ReportFilter) -> list[Any]:
    return [
        school_id, f.first_day, f.last_day, f.grade_id, f.class_id,
        f.kind.value if f.kind else None, f.include_withdrawn,
    ]


async def list_reports(
    people: People, school_id: int, filter: ReportFilter, limit: int = 100, offset: int = 0
) -> ReportPage:
    """One school's reports matching the filter, by day, grade, class, number; with the total."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise InputError("limit は 1〜1000、offset は 0 以上にしてください (bad paging)")
    args = _args(school_id, filter)
    total: int = await people.pool.fetchval("SELECT count(*) " + _LIST_WHERE, *args)
    rows = await people.pool.fetch(
        "SELECT r.*, g.grade, cl.name AS class_name, a.number, a.name_sealed "
        + _LIST_WHERE
        + " ORDER BY r.first_day, g.grade NULLS LAST, cl.name NULLS LAST, a.number NULLS LAST, "
        "r.id LIMIT $8 OFFSET $9",
        *args, limit, offset,
    )
    settings = await report_settings(people.pool, school_id)
    questions = settings.all_questions if settings else ()
    return ReportPage(total, [_report(people, r, questions) for r in rows])


def _report(people: People, r: asyncpg.Record, questions: Sequence[Question]) -> Report:
    open_ = people.sealer.open
    answers: dict[str, Answer] = {}
    if r["answers_sealed"]:
        stored = json.loads(open_(r["answers_sealed"], ANSWERS))
        answers = join_answers(questions, stored["clear"], stored["texts"])
    return Report(
        r["id"], r["account_id"], r["grade"], r["class_name"], r["number"],
        open_(r["name_sealed"], ACCOUNT_NAME), ReportKind(r["kind"]), r["first_day"],
        r["last_day"], open_(r["reason_sealed"], REASON) if r["reason_sealed"] else None,
        open_(r["note_sealed"], NOTE) if r["note_sealed"] else "", answers, r["state"],
        r["created_at"], r["updated_at"], r["at_time"],
    )


async def reports_csv(people: People, school_id: int, filter: ReportFilter) -> bytes:
    """The filtered reports as CSV, UTF-8 with BOM (all pages)."""
    settings = await report_settings(people.pool, school_id)
    questions = settings.all_questions if settings else ()
    header = [
        "種別", "開始日", "終了日", "時刻", "学年", "組", "番号", "氏名", "理由", "連絡事項",
        *(q.label for q in questions), "状態", "受付日時",
    ]
    rows: list[list[object]] = []
    while True:
        page = await list_reports(people, school_id, filter, 1000, len(rows))
        rows.extend(
            [
                r.kind.label_ja, r.first_day.isoformat(), r.last_day.isoformat(),
                f"{r.at_time:%H:%M}" if r.at_time else "",
                "" if r.grade is None else r.grade, r.class_name or "",
                "" if r.number is None else r.number, csv_cell(r.name),
                csv_cell(r.reason or ""), csv_cell(r.note),
                *(csv_cell(answer_text(q, r.answers.get(q.key))) for q in questions),
                "取消" if r.state == "withdrawn" else "有効",
                f"{jst(r.created_at):%Y-%m-%d %H:%M}",
            ]
            for r in page.reports
        )
        if len(rows) >= page.total or not page.reports:
            return csv_bytes(header, rows)


async def new_report_count(
    people: People, school_id: int, since: datetime, kind: ReportKind | None = None
) -> int:
    """Reports of the school made or changed after ``since`` (the screens' badge)."""
    n: int = await people.pool.fetchval(
        "SELECT count(*) FROM attendance_reports WHERE school_id = $1 AND updated_at > $2 "
        "AND ($3::text IS NULL OR kind = $3)",
        school_id, since, kind.value if kind else None,
    )
    return n
