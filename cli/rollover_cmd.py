"""`mamoru rollover`: move to the next school year (grade + 1, graduates closed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.people.class_moves import ClassMove, parse_class_moves
from engine.people.rollover import Farewell
from engine.people.rollover import rollover as do_rollover
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue


def rollover(
    to_year: Annotated[int, typer.Option("--to-year", help="The new school year, e.g. 2027.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    classes: Annotated[
        Path | None,
        typer.Option(help="CSV of class changes: 学校,学年,組,番号,新しい組[,新しい番号] "
                          "(default: every class name is kept)."),
    ] = None,
    encoding: Annotated[str, typer.Option(help="auto | utf-8 | cp932 (for --classes)")] = "auto",
    farewell_body: Annotated[
        Path | None,
        typer.Option(help="Tell graduates' contacts with this mail body (UTF-8 text file)."),
    ] = None,
    sender: Annotated[
        str | None, typer.Option(help="From address of the graduates' mail.")
    ] = None,
    subject: Annotated[
        str, typer.Option(help="Subject of the graduates' mail.")
    ] = "卒業に伴うメール配信終了のお知らせ",
    config: ConfigOption = None,
) -> None:
    """Next school year: everyone one grade up, graduates closed (年度更新)."""
    settings = settings_of(config)
    farewell = _farewell_message(farewell_body, sender, subject)
    moves: list[ClassMove] = []
    if classes is not None:
        try:
            moves = parse_class_moves(classes.read_bytes(), encoding)
        except OSError as exc:
            fail(f"{classes} を読めません: {exc.strerror}")
        except InputError as exc:
            fail(f"{classes}: {exc}")
    result = run_people(
        settings,
        lambda p: do_rollover(
            p, to_year, dry_run, moves,
            Farewell(farewell, Queue(p.pool, p.sealer), settings.queue.max_age)
            if farewell else None,
        ),
        Trail(
            "rollover", str(to_year),
            detail_of=lambda r: ("dry run " if not r.applied else "")
            + " ".join(f"{s.code}:+{s.advancing}/-{s.graduating}" for s in r.schools),
        ),
    )
    table = Table(title=f"{result.from_year} 年度 → {result.to_year} 年度")
    for c in ("学校", "進級", "卒業 (アカウント終了)"):
        table.add_column(c)
    for s in result.schools:
        table.add_row(f"{s.code} {s.name}", str(s.advancing), str(s.graduating))
    out().print(table)
    verb = "切り替えました" if result.applied else "切り替える予定です (--dry-run: 変更なし)"
    moved = f" (うち組替え {result.moved} 人)" if moves else ""
    out().print(
        f"{result.to_year} 年度に{verb}: 進級 {result.advancing} 人{moved}、"
        f"卒業 {result.graduating} 人。",
        markup=False,
    )
    if farewell:
        sent = f" (配信 {result.farewell_id})" if result.farewell_id else ""
        out().print(
            f"卒業生の連絡先 {result.told} 件に配信終了のお知らせを"
            f"{'登録しました' if result.applied else '送る予定です'}{sent}。",
            markup=False,
        )


def _farewell_message(body: Path | None, sender: str | None, subject: str) -> NewBroadcast | None:
    if body is None:
        if sender is not None:
            fail("--sender は --farewell-body と一緒に使います (give --farewell-body too)")
        return None
    if sender is None:
        fail("--farewell-body には --sender が必要です (give the From address)")
    try:
        text = body.read_text(encoding="utf-8-sig")
        address = normalise_address(sender)
    except FileNotFoundError:
        fail(f"--farewell-body {body} がありません (does not exist)")
    except UnicodeDecodeError:
        fail(f"--farewell-body {body} が UTF-8 ではありません (not UTF-8)")
    except InputError as exc:
        fail(f"--sender: {exc}")
    if not text.strip() or not subject.strip() or "\n" in subject:
        fail("お知らせの本文と件名 (1 行) が必要です (body and a one-line subject)")
    return NewBroadcast(address, subject.strip(), text, [])
