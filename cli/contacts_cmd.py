"""`mamoru contacts purge|invite`: delete personal data (contract end); invite the unconfirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, note, out, run_people, settings_of
from engine.people import People
from engine.people.accounts import PurgeResult, purge
from engine.people.directory import find_organisation
from engine.people.invitations import Invitation, invite
from engine.platform.clock import jst
from engine.queue import Queue
from engine.staff import attachments

app = typer.Typer(
    help="連絡先 (contacts): inviting unconfirmed ones, deleting personal data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def contacts() -> None:
    """連絡先 (contacts): inviting unconfirmed ones, deleting personal data."""


# What the operator types to confirm the disposal of everything (unless --yes).
CONFIRM_ALL = "すべて削除"


@app.command("purge")
def purge_(
    school: Annotated[
        str | None, typer.Option(help="Delete this school's accounts and contacts.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Contract end: delete everyone and every staff account.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm without asking: the deletion cannot be undone.")
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="--all: the disposal record PDF (default: "
                                      "./mamoru-disposal-YYYYMMDD-HHMMSS.pdf)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Delete accounts and contacts for good, and report counts (個人情報の削除); with --all,
    the disposal at contract end with its record (契約終了時の廃棄)."""
    if (school is None) == (not all_):
        fail("--school 学校 か --all のどちらか一つを指定してください (give --school S or --all)")
    if record is not None and not all_:
        fail("--record は --all と一緒に使います (--record goes with --all)")
    if all_:
        _dispose_all(yes, record, config)
        return
    if not yes:
        fail("削除は元に戻せません。実行するには --yes を付けてください (add --yes to confirm)")
    settings = settings_of(config)

    async def go(p: People) -> tuple[PurgeResult, int]:
        org = await find_organisation(p.pool, school) if school else None
        result = await purge(p, org)
        # Files sent with the school's broadcasts can identify its families too.
        return result, await attachments.purge(p.pool, org.id if org else None)

    result, files = run_people(settings, go, Trail(
        "contacts.purge", school or "all",
        detail_of=lambda done: f"accounts={done[0].accounts} contacts={done[0].contacts} "
                               f"deliveries={done[0].deliveries} files={done[1]}",
    ))
    out().print(
        f"学校「{school}」の個人情報を削除しました: アカウント {result.accounts} 件、"
        f"連絡先 {result.contacts} 件、グループ登録 {result.group_memberships} 件、"
        f"配信記録の宛先 {result.deliveries} 件、配信停止リスト {result.suppressions} 件、"
        f"添付資料 {files} 件",
        markup=False,
    )


def _record_path(record: Path | None) -> Path:
    """Where the record goes; refused before anything is deleted when it cannot be written
    there or a file is in the way (a record is never overwritten)."""
    from datetime import UTC, datetime

    path = record or Path(f"mamoru-disposal-{jst(datetime.now(UTC)):%Y%m%d-%H%M%S}.pdf")
    if path.exists():
        fail(f"廃棄記録のファイル {path} は既にあります (the record file exists; give another)")
    if not path.resolve().parent.is_dir():
        fail(f"廃棄記録を書くフォルダ {path.parent} がありません (no such folder)")
    return path


def _dispose_all(yes: bool, record: Path | None, config: Path | None) -> None:
    from cli.audit_trail import cli_actor
    from engine.platform.private_files import write_private
    from engine.staff.disposal import Disposal, disposal_pdf, dispose_all

    path = _record_path(record)
    settings = settings_of(config)
    if not yes:
        note("すべての児童・保護者の連絡先、職員アカウント、添付資料を物理削除します。元に戻せません。")
        typed = typer.prompt(f"実行するには「{CONFIRM_ALL}」と入力してください", default="",
                             show_default=False)
        if typed.strip() != CONFIRM_ALL:
            fail("確認の入力が違います。何も削除していません (not confirmed; nothing deleted)")

    async def go(p: People) -> Disposal:
        return await dispose_all(p, settings, cli_actor())

    # A refusal or failure (nothing deleted) is in the audit log too, as for every command.
    done = run_people(settings, go, Trail(
        "contacts.purge", "all", detail_of=lambda d: f"disposal record {d.audit_seq}"))
    try:
        write_private(path, disposal_pdf(done))
    except OSError as exc:
        fail(f"削除は完了し監査ログ {done.audit_seq} 番に記録しましたが、廃棄記録の PDF を"
             f"書けません / deleted and audited, but the PDF cannot be written: {exc}", 1)
    counts = "、".join(f"{label} {n} 件" for label, n in done.counts_ja())
    out().print(f"契約終了の廃棄を行いました (物理削除): {counts}", markup=False, soft_wrap=True)
    out().print(done.backups_ja(), markup=False, soft_wrap=True)
    out().print(f"監査ログ {done.audit_seq} 番に記録しました。{done.verification.summary_ja()}",
                markup=False, soft_wrap=True)
    out().print(f"廃棄記録 (PDF): {path.resolve()}", markup=False, soft_wrap=True)
    if not done.verification.ok:
        raise typer.Exit(3)


@app.command("invite")
def invite_(
    school: Annotated[
        str | None, typer.Option(help="Only the unconfirmed contacts of this school.")
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Also those invited before (never the confirmed).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Mail the registration check to contacts imported unconfirmed (登録確認の案内)."""
    settings = settings_of(config)

    async def go(p: People) -> Invitation:
        org = await find_organisation(p.pool, school) if school else None
        return await invite(p, Queue(p.pool, p.sealer), settings, org, again)

    result = run_people(settings, go, Trail(
        "contacts.invite", school or "all",
        detail_of=lambda i: f"invited={i.invited} broadcast={i.broadcast_id}",
    ))
    if result.broadcast_id is None:
        out().print("案内を送る未確認の連絡先はありません (nobody to invite)", markup=False)
        return
    out().print(
        f"登録確認の案内を {result.invited} 件の連絡先に送ります (配信 {result.broadcast_id})",
        markup=False,
    )
