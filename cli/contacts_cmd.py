"""`mamoru contacts purge|invite`: delete personal data (contract end); invite the unconfirmed."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from engine.people import People
from engine.people.accounts import PurgeResult, purge
from engine.people.directory import find_organisation
from engine.people.invitations import Invitation, invite
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


@app.command("purge")
def purge_(
    school: Annotated[
        str | None, typer.Option(help="Delete this school's accounts and contacts.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Delete every account and contact.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Required: the deletion cannot be undone.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Delete accounts and contacts for good, and report counts (個人情報の削除)."""
    if (school is None) == (not all_):
        fail("--school 学校 か --all のどちらか一つを指定してください (give --school S or --all)")
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
    target = f"学校「{school}」" if school else "全員"
    out().print(
        f"{target}の個人情報を削除しました: アカウント {result.accounts} 件、"
        f"連絡先 {result.contacts} 件、グループ登録 {result.group_memberships} 件、"
        f"配信記録の宛先 {result.deliveries} 件、配信停止リスト {result.suppressions} 件、"
        f"添付資料 {files} 件",
        markup=False,
    )


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
