"""`mamoru schools`: register the board of education and its schools, list them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.people import OrgKind
from engine.people.directory import add_organisation, list_organisations
from engine.platform.errors import InputError

app = typer.Typer(
    help="教育委員会・学校 (the board and its schools).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def schools() -> None:
    """教育委員会・学校 (the board and its schools)."""


@app.command()
def add(
    code: Annotated[str, typer.Argument(help="Short code used on the command line and in CSV.")],
    name: Annotated[str, typer.Argument(help="Name, e.g. 第一小学校.")],
    kind: Annotated[
        str,
        typer.Option(help="board | elementary | junior_high | compulsory | kindergarten | "
                          "high | special_needs | other (or 小学校, 中学校 ...)."),
    ],
    board: Annotated[
        str | None, typer.Option(help="The board (code or name) when there are several.")
    ] = None,
    final_grade: Annotated[
        int | None, typer.Option(help="Last grade (default by kind: 小 6, 中 3, 義務 9 ...).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register the board or a school (教育委員会・学校の登録)."""
    settings = settings_of(config)
    try:
        org_kind = OrgKind.parse(kind)
    except InputError as exc:
        fail(str(exc))
    org = run_people(
        settings, lambda p: add_organisation(p, org_kind, code, name, board, final_grade),
        Trail("school.add", code, detail_of=lambda o: f"kind={o.kind.value} id={o.id}"),
    )
    out().print(
        f"登録しました: {org.code} {org.name} ({org.kind.label_ja}, 最終学年 {org.final_grade})",
        markup=False,
    )


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """List the board and schools (一覧)."""
    settings = settings_of(config)

    orgs = run_people(settings, lambda p: list_organisations(p.pool))
    table = Table(title=f"教育委員会・学校 ({len(orgs)} 件)")
    for c in ("コード", "名前", "種別", "最終学年"):
        table.add_column(c)
    for o in orgs:
        table.add_row(o.code, o.name, o.kind.label_ja, str(o.final_grade))
    out().print(table)
