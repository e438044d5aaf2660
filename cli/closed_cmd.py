"""`mamoru schools closed`: a school's extra days off (開校記念日, 振替休業日, 長期休業 ...).

Weekends and Japanese public holidays are days off without being added; absence, lateness and
early-leave reports are refused for every day off (engine/twoway/school_calendar.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.people import People
from engine.people.directory import find_organisation
from engine.platform.errors import InputError
from engine.twoway.school_calendar import (
    add_closure,
    day_label,
    default_day_off,
    list_closures,
    remove_closure,
)

app = typer.Typer(
    help="学校の休業日 (a school's extra days off).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
MAX_RANGE = 120


def _days(first: str, last: str | None) -> list[date]:
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError:
        fail(f"日付は 2026-12-25 のように書いてください (write dates as YYYY-MM-DD): {first}")
    if end < start or (end - start).days >= MAX_RANGE:
        fail(f"期間は始めの日から {MAX_RANGE} 日までです (a range of 1-{MAX_RANGE} days)")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


async def _school_id(people: People, school: str) -> int:
    org = await find_organisation(people.pool, school)
    if org.kind.value == "board":
        raise InputError(f"{org.name} は学校ではありません (not a school)")
    return org.id


@app.command()
def add(
    school: Annotated[str, typer.Argument(help="School (code or name).")],
    first: Annotated[str, typer.Argument(help="Day, e.g. 2026-12-25.")],
    last: Annotated[str | None, typer.Argument(help="Last day of a range (inclusive).")] = None,
    note: Annotated[str, typer.Option(help="What it is, e.g. 開校記念日.")] = "",
    config: ConfigOption = None,
) -> None:
    """Add closed days (休業日の追加); weekends and holidays need no adding."""
    settings = settings_of(config)
    days = _days(first, last)

    async def use(people: People) -> int:
        school_id = await _school_id(people, school)
        return sum([await add_closure(people, school_id, d, note) for d in days])

    span = f"{first}..{last or first}"
    added = run_people(
        settings, use, Trail("school.closed.add", school, detail_of=lambda n: f"{span} added={n}")
    )
    out().print(
        f"休業日を {added} 日追加しました ({len(days) - added} 日は登録済み)。", markup=False
    )


@app.command()
def remove(
    school: Annotated[str, typer.Argument(help="School (code or name).")],
    first: Annotated[str, typer.Argument(help="Day, e.g. 2026-12-25.")],
    last: Annotated[str | None, typer.Argument(help="Last day of a range (inclusive).")] = None,
    config: ConfigOption = None,
) -> None:
    """Remove closed days (休業日の取り消し); weekends and holidays stay days off."""
    settings = settings_of(config)
    days = _days(first, last)

    async def use(people: People) -> int:
        school_id = await _school_id(people, school)
        return sum([await remove_closure(people, school_id, d) for d in days])

    span = f"{first}..{last or first}"
    removed = run_people(
        settings, use,
        Trail("school.closed.remove", school, detail_of=lambda n: f"{span} removed={n}"),
    )
    out().print(f"休業日を {removed} 日取り消しました。", markup=False)


@app.command("list")
def list_(
    school: Annotated[str, typer.Argument(help="School (code or name).")],
    since: Annotated[str | None, typer.Option(help="From this day (default: all).")] = None,
    config: ConfigOption = None,
) -> None:
    """List the added closed days (休業日の一覧)."""
    settings = settings_of(config)
    start = _days(since, None)[0] if since else None

    async def use(people: People) -> list[tuple[date, str]]:
        school_id = await _school_id(people, school)
        return [(c.day, c.note) for c in await list_closures(people, school_id, start)]

    rows = run_people(settings, use)
    table = Table(title=f"{school} の休業日 ({len(rows)} 日、土日・祝日のほか)")
    for c in ("日付", "メモ", "土日・祝日"):
        table.add_column(c)
    for day, note in rows:
        table.add_row(day_label(day) + f" {day.isoformat()}", note, default_day_off(day) or "")
    out().print(table)
