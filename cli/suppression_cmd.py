"""`mamoru suppression`: list, add, remove, import and export the suppression list.

The suppression list (配信停止リスト) holds the addresses no broadcast is sent to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from cli.audit_trail import Trail, audited
from cli.options import ConfigOption, exit_code
from cli.options import fail as _fail
from cli.options import settings as _settings
from engine.bounce.classify.categories import CATEGORIES
from engine.bounce.suppression import Suppression, Suppressions
from engine.platform.address import mask_addresses
from engine.platform.clock import jst_text
from engine.platform.config import Settings
from engine.platform.csv_io import decode_text
from engine.platform.errors import InputError, MamoruError
from engine.platform.private_files import write_private

app = typer.Typer(
    help="配信停止リスト (suppression list): addresses no broadcast is sent to.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

SOURCE_LABELS_JA = {
    "bounce": "エラーメール",
    "smtp": "配信時の応答",
    "complaint": "苦情",
    "operator": "手動登録",
    "import": "取り込み",
}


def _out() -> Console:
    return Console(highlight=False)


def _run(
    settings: Settings,
    use: Callable[[Suppressions], Coroutine[Any, Any, T]],
    trail: Trail[T] | None = None,
) -> T:
    """Open the engine, run ``use`` on its suppression list, close; errors become one line.
    With ``trail`` the command is recorded in the audit log."""
    from engine.delivery.context import Engine

    async def main() -> T:
        engine = await Engine.open(settings)
        try:
            work = use(
                Suppressions(
                    engine.pool, engine.queue.sealer, settings.suppression, engine.clock
                )
            )
            if trail is None:
                return await work
            return await audited(engine.pool, settings, engine.clock, trail, work)
        finally:
            await engine.close()

    try:
        return uvloop.run(main())
    except MamoruError as exc:
        _fail(str(exc), exit_code(exc))


@app.callback()
def suppression() -> None:
    """配信停止リスト (suppression list): addresses no broadcast is sent to."""


@app.command("list")
def list_(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many rows to show.")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip (newest first).")] = 0,
) -> None:
    """Show the list, newest first (配信停止リストの表示)."""
    settings = _settings(config)
    rows: list[Suppression] = _run(settings, lambda s: s.list(limit, offset))
    table = Table(title=f"配信停止リスト ({len(rows)} 件)")
    # Addresses and dates are read and copied whole; the free text columns wrap instead.
    table.add_column("宛先", no_wrap=True)
    table.add_column("区分", overflow="fold")
    table.add_column("理由", overflow="fold")
    table.add_column("登録元", overflow="fold")
    table.add_column("登録日時 (日本時間)", no_wrap=True)
    table.add_column("メモ", overflow="fold")
    for r in rows:
        label = CATEGORIES[r.category].label_ja if r.category in CATEGORIES else r.category
        table.add_row(
            r.address, label, r.reason, SOURCE_LABELS_JA.get(r.source, r.source),
            jst_text(r.created_at, seconds=False), r.note,
        )
    _out().print(table)


@app.command()
def add(
    address: Annotated[str, typer.Argument(help="The address to stop sending to.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, e.g. userunknown or 保護者の依頼.")
    ],
    category: Annotated[
        str | None,
        typer.Option(help=f"Category key ({', '.join(CATEGORIES)}); default: from the reason."),
    ] = None,
    note: Annotated[str, typer.Option(help="Free text kept with the entry.")] = "",
    config: ConfigOption = None,
) -> None:
    """Add (or replace) one address (配信停止に登録)."""
    settings = _settings(config)
    stored = _run(
        settings, lambda s: s.add(address, reason, category, source="operator", note=note),
        Trail("suppression.add", mask_addresses(address), detail_of=lambda _: reason[:100]),
    )
    _out().print(f"配信停止リストに登録しました: {stored}", markup=False)


@app.command()
def remove(
    address: Annotated[str, typer.Argument(help="The address to send to again.")],
    config: ConfigOption = None,
) -> None:
    """Take one address off the list (配信停止の解除)."""
    settings = _settings(config)
    removed = _run(settings, lambda s: s.remove(address), Trail(
        "suppression.remove", mask_addresses(address), detail_of=lambda r: f"removed={r}"
    ))
    if not removed:
        _fail(f"{address} is not on the suppression list", 1)
    _out().print(f"配信停止を解除しました: {address.strip()}", markup=False)


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="CSV: address,reason,category,source,created_at,note")
    ],
    config: ConfigOption = None,
) -> None:
    """Add every address of a CSV file, or nothing if any line is bad (一括登録)."""
    settings = _settings(config)
    try:
        # UTF-8 (with or without BOM) or CP932, as Excel saves it.
        text = decode_text(file.read_bytes(), str(file))
    except FileNotFoundError:
        _fail(f"{file} does not exist")
    except InputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{file} cannot be read: {exc.strerror}")
    count = _run(settings, lambda s: s.import_csv(text, str(file)), Trail(
        "suppression.import", file.name, detail_of=lambda n: f"added={n}"
    ))
    _out().print(f"{count} 件を配信停止リストに取り込みました。", markup=False)


@app.command()
def export(
    file: Annotated[
        Path | None, typer.Argument(help="Write here (default: standard output).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the whole list as CSV, UTF-8 with BOM (書き出し)."""
    settings = _settings(config)
    text = _run(settings, lambda s: s.export_csv(), Trail(
        "suppression.export", str(file or "-"), detail_of=lambda t: f"rows={t.count(chr(10)) - 1}"
    ))
    if file is None:
        sys.stdout.write(text)
        return
    try:
        write_private(file, text.encode("utf-8"))
    except OSError as exc:
        _fail(f"{file} cannot be written: {exc.strerror}", 1)
    rows = text.count("\n") - 1
    Console(stderr=True, highlight=False).print(f"{rows} 件を {file} に書き出しました。")
