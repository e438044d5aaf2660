"""`mamoru attachments prune`: delete the files whose broadcasts' keep_days are over."""

from __future__ import annotations

import typer

from cli.audit_trail import cli_actor
from cli.people_session import ConfigOption, out, settings_of
from cli.staff_session import run_staff
from engine.people import People
from engine.staff import attachments
from engine.staff.store import Staff

app = typer.Typer(
    help="添付資料 (attachments): deleting files after their keeping time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def attachments_() -> None:
    """添付資料 (attachments)."""


@app.command()
def prune(config: ConfigOption = None) -> None:
    """Delete files (and their download log) older than [attachments] keep_days, for good."""
    settings = settings_of(config)

    async def use(people: People, staff: Staff) -> int:
        deleted = await attachments.prune(staff.pool, staff.now())
        await staff.log(cli_actor(), "attachment.prune", "", detail=f"deleted={deleted}")
        return deleted

    deleted = run_staff(settings, use)
    out().print(f"保存期間を過ぎた添付資料を {deleted} 件削除しました (deleted {deleted} files)",
                markup=False)
