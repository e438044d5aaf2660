"""`mamoru groups`: custom groups (guardians, staff, districts ...) and their conditions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.people import Category, NightWindow
from engine.people.directory import add_group, list_groups
from engine.platform.errors import InputError

app = typer.Typer(
    help="グループ (custom groups) and their delivery conditions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def groups() -> None:
    """グループ (custom groups) and their delivery conditions."""


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Group name, e.g. 見守りボランティア.")],
    school: Annotated[
        str | None, typer.Option(help="Owning school (code or name); default: the board.")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="Free label: guardians, staff, companies, citizens, district ...")
    ] = "other",
    public: Annotated[
        bool, typer.Option("--public", help="Citizens may join it themselves (公開).")
    ] = False,
    categories: Annotated[
        str | None,
        typer.Option(help="Categories received, comma-separated (e.g. 緊急,不審者情報); "
                          "default: all."),
    ] = None,
    night: Annotated[
        str | None,
        typer.Option(help="Non-emergency mail waits out this window (Japan time), "
                          "e.g. 21:00-07:00."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a group (グループの追加)."""
    settings = settings_of(config)
    try:
        cats = (
            [Category.parse(c) for c in categories.replace("、", ",").split(",") if c.strip()]
            if categories is not None else None
        )
        if cats is not None and not cats:
            raise InputError("--categories が空です (give at least one category)")
        window = NightWindow.parse(night) if night else None
    except InputError as exc:
        fail(str(exc))
    group = run_people(
        settings, lambda p: add_group(p, name, school, kind, public, cats, window),
        Trail("group.add", name, detail_of=lambda g: f"id={g.id} owner={g.owner_code}"),
    )
    out().print(
        f"グループを登録しました: {group.owner_code}/{group.name} (id {group.id})", markup=False
    )


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """List groups with their conditions (一覧)."""
    settings = settings_of(config)
    rows = run_people(settings, lambda p: list_groups(p.pool))
    table = Table(title=f"グループ ({len(rows)} 件)")
    for c in ("id", "所属", "名前", "種類", "公開", "受け取る区分", "夜間"):
        table.add_column(c)
    for g in rows:
        cats = g.conditions.categories
        table.add_row(
            str(g.id), g.owner_code, g.name, g.kind, "公開" if g.is_public else "",
            "すべて" if cats is None else "、".join(c.label_ja for c in sorted(cats)),
            str(g.conditions.night) if g.conditions.night else "",
        )
    out().print(table)
