"""`mamoru report`: reports for operators; `errors` says why mails failed, by category;
`monthly` is the monthly operation report (engine/staff/monthly_report.py), on screen, as PDF
and as CSV."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from cli.options import ConfigOption, config_path, exit_code, require_database
from cli.options import fail as _fail
from engine.platform.clock import jst, jst_text
from engine.platform.config import Settings, load_settings
from engine.platform.csv_io import csv_cell, csv_text
from engine.platform.errors import InputError, MamoruError

app = typer.Typer(
    help="レポート (reports): errors by category, the monthly operation report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CSV_COLUMNS = ("category", "label", "hard", "count", "suppressed", "address", "reason",
               "code", "status", "text")


@app.callback()
def report() -> None:
    """レポート (reports): errors by category, the monthly operation report."""


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--since {text!r} is not a date or time (e.g. 2026-11-20 or 2026-11-20T07:00+09:00)"
        ) from None
    if when.tzinfo is None:
        # A date or time without a zone is Japanese time, as operators write it.
        from engine.platform.clock import JST

        when = when.replace(tzinfo=JST)
    return when


async def _report(
    settings: Settings, broadcast: int | None, since: datetime | None, examples: int
) -> dict[str, Any]:
    from engine.bounce.report import error_report
    from engine.delivery import shaping_state
    from engine.delivery.context import Engine

    engine = await Engine.open(settings)
    try:
        data = await error_report(engine.pool, engine.queue.sealer, broadcast, since, examples)
        # Blocks are a site's condition, not a recipient's failure: shown beside the failures.
        data["blocks"] = await shaping_state.blocks(engine.pool)
        return data
    finally:
        await engine.close()


@app.command()
def errors(
    broadcast: Annotated[
        int | None, typer.Option("--broadcast", help="Only this broadcast's deliveries.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only failures from this time on (ISO date/time; JST)."),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: one line per example.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    examples: Annotated[int, typer.Option(min=0, help="Examples per category.")] = 3,
    config: ConfigOption = None,
) -> None:
    """Failures grouped by category, with examples (エラー区分別レポート)."""
    if as_csv and as_json:
        _fail("choose one of --csv and --json")
    try:
        settings = load_settings(config_path(config))
        require_database(settings)
        when = _since(since)
    except MamoruError as exc:
        _fail(str(exc), exit_code(exc))
    try:
        data = uvloop.run(_report(settings, broadcast, when, examples))
    except MamoruError as exc:
        _fail(str(exc), exit_code(exc))
    if as_json:
        print(json.dumps(data, ensure_ascii=False, default=str))
        return
    if as_csv:
        rows = []
        for g in data["categories"]:
            head = (g["key"], g["label"], "hard" if g["hard"] else "soft", g["count"],
                    g["suppressed"])
            for e in g["examples"] or [{}]:
                rows.append(
                    (*head, *(csv_cell(str(e[k])) if e.get(k) is not None else ""
                              for k in ("address", "reason", "code", "status", "text")))
                )
        sys.stdout.write(csv_text(CSV_COLUMNS, rows))  # UTF-8 with BOM, for Excel
        return
    scope = f"配信 {broadcast}" if broadcast is not None else "全配信"
    if when is not None:
        scope += f"、{jst_text(when, seconds=False)} (日本時間) 以降"
    table = Table(title=f"エラー区分別レポート ({scope})")
    for column in ("区分", "扱い", "件数", "うち配信停止", "例 (宛先・理由・応答)"):
        table.add_column(column, overflow="fold")
    for g in data["categories"]:
        shown = "\n".join(
            f"{e['address']}  {e['reason']}  {e['status'] or e['code'] or ''}  "
            f"{(e['text'] or '')[:60]}"
            for e in g["examples"]
        )
        table.add_row(
            g["label"], "停止" if g["hard"] else "再送", str(g["count"]), str(g["suppressed"]),
            shown,
        )
    out = Console(highlight=False)
    out.print(table)
    out.print(
        f"合計 {data['total']} 件、未分類のエラーメール {data['unclassified']} 件", markup=False
    )
    if data["blocks"]:
        blocked = Table(title="受信側によるブロック (送信元 × サイト) — 宛先の失敗には数えません")
        for column in ("送信元", "サイト", "回数", "次の試行", "応答"):
            blocked.add_column(column, overflow="fold")
        for b in data["blocks"]:
            until = b["blocked_until"]
            blocked.add_row(
                b["source"] or "(既定)", b["site"], str(b["blocks"]),
                jst(until).strftime("%m-%d %H:%M:%S") if until else "解除済み",
                b["block_reason"],
            )
        out.print(blocked)


async def _monthly(settings: Settings, month: str, board: str | None) -> Any:
    from engine.delivery.context import Engine
    from engine.staff.audit_keys import load_audit_key
    from engine.staff.monthly_report import monthly_report

    engine = await Engine.open(settings)
    try:
        key = await load_audit_key(engine.pool, settings.staff)
        return await monthly_report(engine.pool, key, month, engine.clock.now(), board)
    finally:
        await engine.close()


@app.command()
def monthly(
    month: Annotated[str, typer.Option("--month", help="The month, e.g. 2026-11 (Japan time).")],
    board: Annotated[
        str | None, typer.Option("--board", help="Only this board's schools (code or name).")
    ] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write the report as PDF.")] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the report as CSV (Excel).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """The monthly operation report (月次運用レポート): broadcasts, delivery times, failures,
    registrations, blocks, availability, audit log and backups."""
    from cli.options import run
    from engine.platform.private_files import write_private
    from engine.staff import monthly_output as output

    try:
        settings = load_settings(config_path(config))
        require_database(settings)
    except MamoruError as exc:
        _fail(str(exc), exit_code(exc))
    report = run(lambda: _monthly(settings, month, board))
    out = Console(highlight=False)
    out.print(f"{output.TITLE} {report.month} ({report.scope_ja})", markup=False)
    for title, (header, lines) in output.sections(report).items():
        if title.startswith("配信ごと") and len(lines) > 20:
            lines = lines[-20:]
            title += f" — 最後の 20 件 (全 {len(report.broadcasts)} 件は --pdf/--csv に)"
        table = Table(title=title)
        for column in header:
            table.add_column(column, overflow="fold")
        for line in lines:
            table.add_row(*(output.duration_ja(c) if isinstance(c, timedelta) else str(c)
                            for c in line))
        out.print(table)
    out.print(output.availability_text(report), markup=False)
    out.print(output.audit_text(report), markup=False)
    try:
        # Per school registrations and broadcast subjects: owner-only files, like exports.
        if pdf is not None:
            write_private(pdf, output.monthly_pdf(report))
            out.print(f"PDF を書きました: {pdf}", markup=False)
        if csv_file is not None:
            write_private(csv_file, output.monthly_csv(report))
            out.print(f"CSV を書きました: {csv_file}", markup=False)
    except OSError as exc:
        _fail(f"ファイルを書けません / cannot write: {exc}", 1)
