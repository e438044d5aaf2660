"""`mamoru senders`: the From addresses each board and school may send as (差出人アドレス)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.message.dkim import dkim_settings
from engine.people import People
from engine.people.directory import find_organisation, list_organisations
from engine.staff.senders import Sender, add_sender, list_senders, remove_sender

app = typer.Typer(
    help="差出人アドレス (the From addresses of the board and each school).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def senders() -> None:
    """差出人アドレス (sender addresses): staff, API keys and SMTP submission send only as these."""


OrgArgument = Annotated[str, typer.Argument(help="The board or school (code or name).")]


@app.command()
def add(
    organisation: OrgArgument,
    address: Annotated[str, typer.Argument(help="From address, e.g. info@sho1.example.jp.")],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 第一小学校.")] = "",
    config: ConfigOption = None,
) -> None:
    """Allow one From address (its domain needs a DKIM key unless dkim.allow_unsigned)."""
    settings = settings_of(config)
    dkim = dkim_settings(settings.dkim)

    async def go(p: People) -> Sender:
        org = await find_organisation(p.pool, organisation)
        return await add_sender(p.pool, org.id, address, name, dkim)

    made = run_people(settings, go, Trail(
        "sender.add", organisation, detail_of=lambda s: f"{s.address} name={s.display_name}"
    ))
    shown = f"{made.display_name} <{made.address}>" if made.display_name else made.address
    out().print(f"差出人を登録しました: {organisation} {shown}", markup=False)


@app.command()
def remove(
    organisation: OrgArgument,
    address: Annotated[str, typer.Argument(help="The From address to withdraw.")],
    config: ConfigOption = None,
) -> None:
    """Withdraw one From address (broadcasts already made keep theirs)."""
    settings = settings_of(config)

    async def go(p: People) -> bool:
        org = await find_organisation(p.pool, organisation)
        return await remove_sender(p.pool, org.id, address)

    removed = run_people(settings, go, Trail(
        "sender.remove", organisation, detail_of=lambda r: f"{address} removed={r}"
    ))
    if not removed:
        fail(f"{organisation} の差出人に {address} はありません (not registered)", 1)
    out().print(f"差出人を削除しました: {organisation} {address}", markup=False)


@app.command("list")
def list_(
    organisation: Annotated[
        str | None, typer.Argument(help="Only this board or school (code or name).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Every organisation's From addresses; the first of each is its default (一覧)."""
    settings = settings_of(config)

    async def go(p: People) -> list[tuple[str, list[Sender]]]:
        orgs = (
            [await find_organisation(p.pool, organisation)] if organisation
            else await list_organisations(p.pool)
        )
        return [(f"{o.code} {o.name}", await list_senders(p.pool, o.id)) for o in orgs]

    table = Table(title="差出人アドレス (最初のものが既定)")
    for c in ("教育委員会・学校", "差出人", "表示名"):
        table.add_column(c)
    for org, addresses in run_people(settings, go):
        if not addresses:
            table.add_row(org, "(未登録: スタッフ・API からは送れません)", "")
        for s in addresses:
            table.add_row(org, s.address, s.display_name)
    out().print(table)
