"""``mamoru backup`` and ``mamoru restore`` (engine/staff/backup.py); both in the audit log.

A refused restore (a non-empty database, a different key file, an altered archive) changes
nothing, and so writes no audit entry either: the target database stays as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.audit_trail import Trail, audited, cli_actor
from cli.options import ConfigOption, fail, run
from cli.options import settings as load_settings
from engine.platform.backup_archive import load_backup_key, new_backup_key
from engine.platform.clock import SystemClock, jst_text
from engine.platform.config import Settings
from engine.platform.errors import MamoruError
from engine.staff.backup import (
    BACKUP_ACTION,
    Made,
    Restored,
    after_restore,
    backup_key_path,
    restore,
    take_backup,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def backup(
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Folder of the archive (default: [backup] dir)."),
    ] = None,
    new_key: Annotated[
        bool,
        typer.Option("--new-key", help="Make the backup key at [backup] key_file, then stop."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Back up the database and its keys, encrypted (バックアップを作成する)."""
    settings = load_settings(config)
    if new_key:
        try:
            path = backup_key_path(settings)
            new_backup_key(path)
        except MamoruError as exc:
            fail(str(exc), 1)
        _out.print(
            f"バックアップ鍵を作成しました: {path}\n"
            "この鍵のコピーをこのサーバーの外 (管理責任者が保管する媒体) に置いてください。"
            "鍵がなければバックアップは復元できません。 / Keep a copy of this key off this host.",
            markup=False,
        )
        return
    folder = to if to is not None else Path(settings.backup.dir)
    made = run(lambda: _backup(settings, folder))
    _out.print(f"バックアップを作成しました: {made.path} ({made.size} バイト, 日本時間 "
               f"{jst_text(made.at)})", markup=False)
    for old in made.removed:
        _out.print(f"  古い世代を削除しました: {old.name}", markup=False)


async def _backup(settings: Settings, folder: Path) -> Made:
    from engine.platform.db import create_pool, dsn_for

    clock = SystemClock()
    dsn = dsn_for(settings.database)
    pool = await create_pool(settings.database, dsn)
    try:
        trail: Trail[Made] = Trail(
            BACKUP_ACTION, object_of=lambda m: m.path.name, detail_of=lambda m: m.summary()
        )
        return await audited(
            pool, settings, clock, trail, take_backup(pool, settings, dsn, folder, clock.now())
        )
    finally:
        await pool.close()


def restore_cmd(
    archive: Annotated[Path, typer.Argument(help="The archive (mamoru-YYYYMMDD-HHMMSS.backup).")],
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="The backup key (default: [backup] key_file)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Restore an archive into an empty database, with its keys (空のデータベースへ復元する)."""
    settings = load_settings(config, creates_database=True)
    try:
        key = load_backup_key(key_file if key_file is not None else backup_key_path(settings))
    except MamoruError as exc:
        fail(str(exc), 1)
    if not archive.is_file():
        fail(f"バックアップ {archive} がありません (no such archive)", 2)
    done, verified = run(lambda: _restore(settings, archive, key))
    _out.print(f"復元しました: {archive.name} (日本時間 {done.taken_at_ja()} に "
               f"{done.manifest.get('host', '?')} で作成)", markup=False)
    for path in done.written:
        _out.print(f"  書き出した鍵など: {path}", markup=False)
    for path in done.already:
        _out.print(f"  同じ鍵がすでにあります: {path}", markup=False)
    for note in done.notes:
        _err.print(f"mamoru: 注意 / note: {note}", markup=False)
    _out.print(verified, markup=False)


async def _restore(settings: Settings, archive: Path, key: bytes) -> tuple[Restored, str]:
    from engine.platform.db import create_pool
    from engine.platform.embedded import embedded_dsn

    clock = SystemClock()
    # Restoring onto a new host is, like `mamoru init`, what may create the embedded database
    # (empty: `init` would fill it with the schema and new keys, which restore refuses).
    dsn = settings.database.url or embedded_dsn(
        settings.database.data_dir, create=True, source=settings.source
    )
    done = await restore(settings, dsn, archive, key)
    # Only now: opening the pool migrates, which would make the target non-empty.
    pool = await create_pool(settings.database, dsn)
    try:
        found = await after_restore(pool, settings, clock.now(), cli_actor(), archive, done)
    finally:
        await pool.close()
    return done, found.summary_ja()
