"""`mamoru audit`: verify the audit log's chain and checkpoints, export it as CSV, prune old
entries, write a checkpoint."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.audit_trail import cli_actor
from cli.people_session import ConfigOption, fail, note, out, settings_of
from cli.staff_session import run_staff
from engine.people import People
from engine.platform.clock import JST
from engine.platform.config import Settings
from engine.platform.private_files import write_private
from engine.staff import audit
from engine.staff.audit_checkpoints import verify_all, write_checkpoint
from engine.staff.store import Staff

app = typer.Typer(
    help="監査ログ (audit log): verify, export, prune, checkpoint.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def audit_log() -> None:
    """監査ログ (audit log)."""


CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="Also check this copy of the checkpoints (default: [staff] audit_checkpoints).",
    ),
]


def _checkpoints(settings: Settings, given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            fail(f"--checkpoint {given}: ファイルがありません (no such file)")
        return given
    staff = settings.staff
    return Path(staff.audit_checkpoints) if staff.audit_checkpoints else None


@app.command()
def verify(checkpoint: CheckpointOption = None, config: ConfigOption = None) -> None:
    """Check the chain and the checkpoints; names the first altered or missing entry (exit 3)."""
    settings = settings_of(config)
    points = _checkpoints(settings, checkpoint)

    async def use(people: People, staff: Staff) -> audit.Verification:
        found = await verify_all(staff.pool, staff.audit_key, points)
        await staff.log(cli_actor(), "audit.verify", str(points or ""),
                        detail="intact" if found.ok else f"broken at {found.first_bad}")
        return found

    v = run_staff(settings, use)
    out().print(v.summary_ja(), markup=False, soft_wrap=True)
    if not v.ok:
        raise typer.Exit(3)


@app.command()
def checkpoint(config: ConfigOption = None) -> None:
    """Append the chain's newest entry to [staff] audit_checkpoints (serve does it daily)."""
    settings = settings_of(config)
    points = _checkpoints(settings, None)
    if points is None:
        fail("[staff] audit_checkpoints が設定されていません (no checkpoint file configured)")

    async def use(people: People, staff: Staff) -> int | None:
        await staff.log(cli_actor(), "audit.checkpoint", str(points))
        point = await write_checkpoint(staff.pool, staff.audit_key, points, staff.now())
        return point.seq if point else None

    try:
        seq = run_staff(settings, use)
    except OSError as exc:
        fail(f"{points} に書けません ({exc.strerror}) / cannot write the checkpoint", 1)
    note(f"監査ログの {seq} 番までを {points} に控えました (checkpoint written)")


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text}: 2026-04-01 や 2026-04-01T09:00+09:00 の形で書いてください "
             f"(write an ISO date or time)")
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return value


@app.command()
def export(
    out_file: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
    since: Annotated[str | None, typer.Option(help="From this date/time (Japan time).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time (Japan time).")] = None,
    config: ConfigOption = None,
) -> None:
    """The audit log as CSV (UTF-8 with BOM, Japan time) for Excel."""
    settings = settings_of(config)
    f = audit.AuditFilter(since=_time(since, "--since"), until=_time(until, "--until"))

    async def use(people: People, staff: Staff) -> str:
        text = await audit.export(staff.pool, f)
        await staff.log(cli_actor(), "audit.export", str(out_file or "-"))
        return text

    text = run_staff(settings, use)
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        write_private(out_file, text.encode("utf-8"))
        note(f"書き出しました: {out_file} ({text.count(chr(10)) - 1} 件)")


@app.command()
def prune(config: ConfigOption = None) -> None:
    """Remove entries older than [staff] audit_keep (at least 90 days); the chain stays valid."""
    settings = settings_of(config)

    async def use(people: People, staff: Staff) -> int:
        n = await audit.prune(
            staff.pool, staff.audit_key, staff.now(), timedelta(seconds=settings.staff.audit_keep)
        )
        await staff.log(cli_actor(), "audit.prune", "", detail=f"removed={n}")
        return n

    note(f"古い監査ログを {run_staff(settings, use)} 件削除しました")
