"""`mamoru queue prune`: remove finished broadcasts older than [queue] keep (配信履歴の整理)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.audit_trail import cli_actor
from cli.people_session import ConfigOption, out, settings_of
from cli.staff_session import run_staff
from engine.people import People
from engine.queue import retention
from engine.staff.store import Staff

app = typer.Typer(
    help="配信キュー (queue): removing finished broadcasts after their keeping time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def queue_() -> None:
    """配信キュー (queue)."""


@app.command()
def prune(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count only")] = False,
    batch: Annotated[int, typer.Option(min=100, max=100_000,
                                       help="deliveries per statement")] = retention.BATCH,
) -> None:
    """Delete broadcasts finished more than [queue] keep ago with all their rows, for good
    (`mamoru serve` does it daily); live or scheduled broadcasts are never touched."""
    settings = settings_of(config)
    keep = settings.queue.keep

    async def use(people: People, staff: Staff) -> retention.Pruned:
        if dry_run:
            return await retention.prune_preview(staff.pool, staff.now(), keep)
        done = await retention.prune(staff.pool, staff.now(), keep, batch)
        await staff.log(cli_actor(), "queue.prune", "",
                        detail=f"broadcasts={done.broadcasts} deliveries={done.deliveries}")
        return done

    done = run_staff(settings, use)
    days = int(keep // retention.DAY)
    verb = "削除できます (would delete)" if dry_run else "削除しました (deleted)"
    out().print(
        f"保存期間 ({days} 日) を過ぎた配信 {done.broadcasts} 件 (宛先 {done.deliveries} 件) を"
        f"{verb}", markup=False)
