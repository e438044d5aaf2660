"""A school's days off: weekends, Japanese public holidays (the ``holidays`` package) and the
closures the school adds (開校記念日, 振替休業日, 長期休業 ...; ``school_closures``, migration 032).

Absence, lateness and early-leave reports are refused for a day off (``check_school_days``,
called by engine.twoway.reports in the report's transaction); the CLI
(``mamoru schools closed add|remove|list``) calls ``add_closure``, ``remove_closure`` and
``list_closures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

import asyncpg

from engine.people.store import People
from engine.platform.errors import InputError

if TYPE_CHECKING:
    import holidays

_WEEKDAYS_JA = "月火水木金土日"
MAX_NOTE = 100


@dataclass(frozen=True)
class Closure:
    day: date
    note: str


@lru_cache(maxsize=32)
def _japan(year: int) -> holidays.HolidayBase:
    # Imported on first use: the package loads its calendars (~60 ms), which every command
    # line and every runner would pay for otherwise.
    import holidays

    return holidays.country_holidays("JP", years=year, language="ja")


def day_label(day: date) -> str:
    """「11月28日（土）」"""
    return f"{day.month}月{day.day}日（{_WEEKDAYS_JA[day.weekday()]}）"


def default_day_off(day: date) -> str | None:
    """Why ``day`` is off by default (「土曜日」, 「文化の日」 ...), None for a school day."""
    if day.weekday() == 5:
        return "土曜日"
    if day.weekday() == 6:
        return "日曜日"
    name = _japan(day.year).get(day)
    return f"祝日: {name}" if name else None


async def days_off(
    conn: asyncpg.Connection | asyncpg.Pool, school_id: int, days: list[date]
) -> dict[date, str]:
    """Which of ``days`` the school is closed, with why."""
    out = {d: why for d in days if (why := default_day_off(d)) is not None}
    rows = await conn.fetch(
        "SELECT day, note FROM school_closures WHERE school_id = $1 AND day = ANY($2::date[])",
        school_id, days,
    )
    for r in rows:
        out.setdefault(r["day"], f"休業日{': ' + r['note'] if r['note'] else ''}")
    return out


async def check_school_days(
    conn: asyncpg.Connection | asyncpg.Pool, school_id: int, first: date, last: date
) -> None:
    """InputError (plain Japanese) when the report's first or last day is a day off: a report
    for days without school is a mistake the guardian should see, not the school."""
    off = await days_off(conn, school_id, sorted({first, last}))
    if off:
        day = min(off)
        raise InputError(
            f"{day_label(day)}は学校がお休みの日です（{off[day]}）。登校する日を選んでください。"
            f" ({day.isoformat()} is not a school day)"
        )


async def add_closure(people: People, school_id: int, day: date, note: str = "") -> bool:
    """The school is closed on ``day``; False when it already was (the note is kept)."""
    note = note.strip()
    if len(note) > MAX_NOTE or any(ch in note for ch in "\r\n\t"):
        raise InputError(f"メモは 1 行 {MAX_NOTE} 文字までです (a note of one line)")
    result: str = await people.pool.execute(
        "INSERT INTO school_closures (school_id, day, note, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        school_id, day, note, people.clock.now(),
    )
    return result.endswith(" 1")


async def remove_closure(people: People, school_id: int, day: date) -> bool:
    """The school is open on ``day`` again (weekends and holidays stay off); False when it
    was not a closure."""
    result: str = await people.pool.execute(
        "DELETE FROM school_closures WHERE school_id = $1 AND day = $2", school_id, day
    )
    return result.endswith(" 1")


async def list_closures(
    people: People, school_id: int, since: date | None = None
) -> list[Closure]:
    rows = await people.pool.fetch(
        "SELECT day, note FROM school_closures WHERE school_id = $1"
        " AND ($2::date IS NULL OR day >= $2) ORDER BY day",
        school_id, since,
    )
    return [Closure(r["day"], r["note"]) for r in rows]
