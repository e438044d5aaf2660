"""`mamoru accounts import|export`: accounts and their contacts in bulk, as CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, note, out, run_people, settings_of
from engine.people import People
from engine.people.accounts import ImportPlan, ImportResult, export_csv, plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import find_organisation
from engine.people.invitations import Invitation, invite
from engine.platform.errors import InputError
from engine.platform.private_files import write_private
from engine.queue import Queue

app = typer.Typer(
    help="アカウント (accounts: one per child or staff member) in bulk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Exit code when good rows were imported and bad ones were not.
PARTIAL = 3


@app.callback()
def accounts() -> None:
    """アカウント (accounts: one per child or staff member) in bulk."""


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with 学校,学年,組,番号,氏名,連絡先1,... .")],
    encoding: Annotated[str, typer.Option(help="auto | utf-8 | cp932")] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row; change nothing.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Import nothing if any row is bad.")
    ] = False,
    confirmed: Annotated[
        bool,
        typer.Option("--confirmed", help="The contacts are confirmed already (else unconfirmed "
                                         "until they confirm from an invitation)."),
    ] = False,
    no_invite: Annotated[
        bool,
        typer.Option("--no-invite", help="Do not mail the invitation to new unconfirmed "
                                         "contacts now (`mamoru contacts invite` later)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Import accounts and contacts from CSV; every bad row is reported (一括登録)."""
    settings = settings_of(config)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        fail(f"{file} がありません (does not exist)")
    except OSError as exc:
        fail(f"{file} を読めません: {exc.strerror}")
    try:
        parsed = parse_rows(data, encoding)
    except InputError as exc:
        fail(f"{file}: {exc}")

    invited: list[Invitation | str] = []

    async def go(p: People) -> tuple[ImportPlan, ImportResult | None]:
        plan = await plan_import(p, parsed)
        if dry_run or (strict and plan.errors):
            return plan, None
        result = await write_import(p, plan, confirmed)
        if not confirmed and not no_invite and result.new_contacts:
            try:
                invited.append(await invite(p, Queue(p.pool, p.sealer), settings))
            except InputError as exc:
                invited.append(str(exc))
        return plan, result

    plan, result = run_people(settings, go, Trail(
        "accounts.import", file.name,
        detail_of=lambda done: (
            "dry run" if done[1] is None else
            f"accounts={done[1].accounts} new_contacts={done[1].new_contacts}"
        ) + f" bad_rows={len(done[0].errors)}",
    ))
    for line, why in plan.errors:
        note(f"{file}:{line} 行目: {why}")
    if result is None:
        if strict and plan.errors and not dry_run:
            fail(f"{len(plan.errors)} 行に誤りがあるため、何も取り込みませんでした (--strict)")
        note(
            f"確認のみ (--dry-run): 取り込める行 {len(plan.rows)}、誤りのある行 "
            f"{len(plan.errors)}。何も変更していません。"
        )
        raise typer.Exit(2 if plan.errors else 0)
    state = "確認済み" if confirmed else "未確認 (登録の案内が必要)"
    out().print(
        f"取り込みました ({parsed.encoding}): アカウント {result.accounts} 件、新しい連絡先 "
        f"{result.new_contacts} 件 ({state})、登録済みの連絡先 {result.existing_contacts} 件",
        markup=False,
    )
    for sent in invited:
        if isinstance(sent, str):
            note(f"登録確認の案内は送っていません: {sent}。設定後に `mamoru contacts invite`")
        elif sent.broadcast_id is not None:
            note(f"登録確認の案内を {sent.invited} 件の連絡先に送ります (配信 {sent.broadcast_id})")
    if plan.errors:
        note(
            f"誤りのある {len(plan.errors)} 行は取り込んでいません。"
            f"直して、その行だけ取り込んでください。"
        )
        raise typer.Exit(PARTIAL)


@app.command()
def export(
    school: Annotated[str | None, typer.Option(help="Only this school (code or name).")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (default: standard output).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write active accounts as CSV (UTF-8 with BOM, opens in Excel) (書き出し)."""
    settings = settings_of(config)

    async def go(p: People) -> str:
        org = await find_organisation(p.pool, school) if school else None
        return await export_csv(p, org)

    text = run_people(settings, go, Trail(
        "accounts.export", school or "all", detail_of=lambda t: f"rows={t.count(chr(10)) - 1}"
    ))
    rows = text.count("\n") - 1
    if out_file is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_private(out_file, text.encode("utf-8"))
        except OSError as exc:
            fail(f"{out_file} に書き込めません: {exc.strerror}", 1)
    note(f"{rows} 件を書き出しました。")
