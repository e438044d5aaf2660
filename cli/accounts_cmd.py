"""`mamoru accounts import|export`: accounts and their contacts in bulk, as CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, note, out, run_people, settings_of
from engine.people import People
from engine.people.accounts import export_csv
from engine.people.csv_import import parse_rows
from engine.people.directory import find_organisation
from engine.people.importing import ImportOptions, ImportReport, changes_csv, import_accounts
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
    encoding: Annotated[str, typer.Option(help="auto | utf-8 | cp932 | utf-16")] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Do everything, then roll back: what would change.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Import nothing if any row is bad.")
    ] = False,
    close_missing: Annotated[
        bool,
        typer.Option("--close-missing", help="Close the accounts of the file's schools that "
                                             "the file no longer lists (implies --strict)."),
    ] = False,
    changes: Annotated[
        Path | None,
        typer.Option("--changes", help="Write every change (or, with --dry-run, every change "
                                       "it would make) to this CSV."),
    ] = None,
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
    """Add and update accounts and contacts from CSV; every bad row is reported (一括登録・更新)."""
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
    options = ImportOptions(confirmed, close_missing, dry_run, strict)
    invited: list[Invitation | str] = []

    async def go(p: People) -> ImportReport:
        report = await import_accounts(p, parsed, options)
        if report.applied and not confirmed and not no_invite and report.new_contacts:
            try:
                invited.append(await invite(p, Queue(p.pool, p.sealer), settings))
            except InputError as exc:
                invited.append(str(exc))
        return report

    report = run_people(settings, go, Trail(
        "accounts.import", file.name,
        detail_of=lambda r: ("" if r.applied else "not applied ") + (
            f"added={r.added} updated={r.updated} closed={r.closed} "
            f"links+={r.links_added} links-={r.links_removed} bad_rows={len(r.errors)}"
        ),
    ))
    for line, why in report.errors:
        note(f"{file}:{line} 行目: {why}")
    if changes is not None:
        try:
            write_private(changes, changes_csv(report.changes).encode("utf-8"))
        except OSError as exc:
            fail(f"{changes} に書き込めません: {exc.strerror}", 1)
    if not report.applied and not dry_run:
        why = "--close-missing" if close_missing else "--strict"
        fail(f"{len(report.errors)} 行に誤りがあるため、何も取り込みませんでした ({why})")
    summary = (
        f"{'確認のみ (--dry-run: 何も変更していません)' if dry_run else '取り込みました'} "
        f"({parsed.encoding}): 追加 {report.added} 件、更新 {report.updated} 件、"
        f"変更なし {report.unchanged} 件、終了 {report.closed} 件、"
        f"連絡先の追加 {report.links_added} 件・削除 {report.links_removed} 件 "
        f"(新しい連絡先 {report.new_contacts} 件、"
        f"{'確認済み' if confirmed else '未確認: 登録の案内が必要'})、"
        f"誤りのある行 {len(report.errors)} 件"
    )
    # A dry run's summary goes with the row errors (standard error); an import's is its output.
    if dry_run:
        note(summary)
    else:
        out().print(summary, markup=False, soft_wrap=True)
    if report.withdrawn:
        note(f"削除した連絡先あての未送信の配信 {report.withdrawn} 件を取り消しました。")
    for sent in invited:
        if isinstance(sent, str):
            note(f"登録確認の案内は送っていません: {sent}。設定後に `mamoru contacts invite`")
        elif sent.broadcast_id is not None:
            note(f"登録確認の案内を {sent.invited} 件の連絡先に送ります (配信 {sent.broadcast_id})")
    if report.errors:
        if dry_run:
            raise typer.Exit(2)
        note(
            f"誤りのある {len(report.errors)} 行は取り込んでいません。"
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
