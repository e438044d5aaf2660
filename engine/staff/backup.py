"""Backup and restore of a whole deployment: the database (PostgreSQL's own ``pg_dump``, custom
format) with the people key, the link key and the audit key beside it, in one archive encrypted
with the backup key (engine/platform/backup_archive.py), named by time and kept in generations
(engine/platform/backup_files.py).

The keys are checked against the database before they are archived (the people key's and the
link key's fingerprints, the audit key taken over from the database if it still held it), so an
archive never pairs a dump with keys that do not open it. A restore goes only into an EMPTY
database, and writes the key files only where none are, or where the same key already is: a
different key file is never overwritten. Everything is checked before anything is changed:
the whole archive (a wrong key, an altered or a cut-short archive is refused), the target
database, every key file. ``pg_restore`` runs in one transaction.

This module lives in ``engine/staff`` because it takes the audit key (and records backups in
the audit log for ``serve``'s daily run, engine/staff/backup_keeper.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from engine.people.store import check_key
from engine.platform import pg_tools
from engine.platform.backup_archive import (
    ArchiveWriter,
    BackupError,
    load_backup_key,
    open_archive,
    verify_archive,
)
from engine.platform.backup_files import archive_name, new_archive, prune
from engine.platform.clock import jst_text
from engine.platform.config import Settings
from engine.platform.db import redact
from engine.platform.errors import ConfigError
from engine.platform.key_files import create_key_file, read_key_file
from engine.platform.link_key import link_key_path, link_secret, read_link_key, write_link_key
from engine.platform.sealing import KEY_BYTES, Sealer, load_key
from engine.staff import audit
from engine.staff.audit_keys import LABEL as AUDIT_LABEL
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import Principal

# audit_log actions
BACKUP_ACTION = "backup.create"
RESTORE_ACTION = "backup.restore"


@dataclass(frozen=True)
class Made:
    """A backup taken: where, how large, and the old generations removed after it."""

    path: Path
    size: int
    at: datetime
    removed: tuple[Path, ...] = ()

    def summary(self) -> str:
        return f"size={self.size} removed={len(self.removed)}"


def backup_key_path(settings: Settings) -> Path:
    if not settings.backup.key_file:
        raise ConfigError(
            "バックアップ鍵が設定されていません。[backup] key_file を設定し、`mamoru backup "
            "--new-key` で作ってください (backup.key_file is not set)"
        )
    return Path(settings.backup.key_file)


async def _server_major(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SHOW server_version_num")) // 10000


async def _archived_keys(pool: asyncpg.Pool, settings: Settings) -> dict[str, bytes]:
    """The three keys, each checked against this database."""
    people = load_key(settings.people.key, settings.people.key_file, create=False)
    await check_key(pool, Sealer(people))
    return {
        "people": people,
        "link": await link_secret(pool, settings),
        "audit": await load_audit_key(pool, settings.staff),
    }


async def take_backup(
    pool: asyncpg.Pool, settings: Settings, dsn: str, folder: Path, now: datetime
) -> Made:
    """Dump the database with its keys into a new archive in ``folder``; then remove the
    generations ``[backup] keep_daily`` does not keep (only after the new one is in place)."""
    backup_key = load_backup_key(backup_key_path(settings))
    keys = await _archived_keys(pool, settings)
    # Read before the dump starts: every checkpoint in it is older than the dump.
    checkpoints = _read_checkpoints(settings)
    major = await _server_major(pool)
    migration = await pool.fetchval("SELECT max(version) FROM mamoru_migrations")
    tool, version = await asyncio.to_thread(
        pg_tools.find_tool, "pg_dump", settings.backup.pg_bin_dir, not settings.database.url,
        major,
    )
    manifest: dict[str, Any] = {
        "format": 1,
        "created_at": now.isoformat(),
        "host": socket.gethostname(),
        "server_version": str(await pool.fetchval("SHOW server_version")),
        "pg_dump_version": version,
        "migration": migration,
        "keys": {name: base64.b64encode(raw).decode("ascii") for name, raw in keys.items()},
        "audit_checkpoints": checkpoints,
    }
    with new_archive(folder, archive_name(now)) as (fh, target):
        writer = ArchiveWriter(fh, backup_key, manifest)
        await pg_tools.dump(tool, dsn, writer.write)
        writer.close()
    removed = prune(folder, settings.backup.keep_daily)
    return Made(target, target.stat().st_size, now, tuple(removed))


def _read_checkpoints(settings: Settings) -> str | None:
    path = settings.staff.audit_checkpoints
    if not path:
        return None
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"監査ログのチェックポイント {path} を読めません ({exc.strerror})") \
            from None


async def record(
    pool: asyncpg.Pool, settings: Settings, now: datetime, actor: Principal, action: str,
    object: str, result: str, detail: str,
) -> None:
    """One audit entry for a backup or restore (the key loaded as every writer loads it)."""
    key = await load_audit_key(pool, settings.staff)
    await audit.record(pool, key, now, actor, action, object, result, detail[:300])


# --- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyPlace:
    """Where the configuration wants one key: as text in the file itself, or a key file."""

    name: str
    setting: str
    inline: bytes | None
    path: Path | None
    read: Callable[[Path], bytes | None]
    write: Callable[[Path, bytes], object]


def _key_places(settings: Settings) -> list[_KeyPlace]:
    people, staff = settings.people, settings.staff

    def read_people(p: Path) -> bytes | None:
        return read_key_file(p, "people.key_file", KEY_BYTES, KEY_BYTES) if p.exists() else None

    def read_audit(p: Path) -> bytes | None:
        return read_key_file(p, AUDIT_LABEL, 1, 1024) if p.exists() else None

    return [
        _KeyPlace(
            "people", "people.key_file",
            load_key(people.key, "", create=False) if people.key else None,
            Path(people.key_file) if people.key_file else None,
            read_people, lambda p, raw: create_key_file(p, raw, "people.key_file"),
        ),
        _KeyPlace(
            "link", "people.link_key_file",
            settings.message.verp_secret.encode("utf-8") if settings.message.verp_secret else None,
            link_key_path(people), read_link_key, write_link_key,
        ),
        _KeyPlace(
            "audit", AUDIT_LABEL,
            staff.audit_key.encode("utf-8") if staff.audit_key else None,
            Path(staff.audit_key_file) if staff.audit_key_file else None,
            read_audit, lambda p, raw: create_key_file(p, raw, AUDIT_LABEL, 1024),
        ),
    ]


@dataclass
class Restored:
    """What a restore did."""

    manifest: dict[str, Any]
    written: list[Path] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def taken_at_ja(self) -> str:
        try:
            return jst_text(datetime.fromisoformat(str(self.manifest.get("created_at"))))
        except ValueError:
            return "?"


def _manifest_keys(manifest: dict[str, Any]) -> dict[str, bytes]:
    try:
        keys = {n: base64.b64decode(v, validate=True) for n, v in manifest["keys"].items()}
    except (KeyError, AttributeError, TypeError, binascii.Error, ValueError):
        raise BackupError("バックアップに鍵が含まれていません (the archive holds no keys)") \
            from None
    if set(keys) != {"people", "link", "audit"}:
        raise BackupError("バックアップの鍵がそろっていません (the archive lacks a key)")
    return keys


def _plan_keys(settings: Settings, keys: dict[str, bytes], done: Restored) -> list[_KeyPlace]:
    """The key files to write; refuses a configured key or key file that differs."""
    to_write = []
    for place in _key_places(settings):
        raw = keys[place.name]
        if place.inline is not None:
            if place.inline != raw:
                raise BackupError(
                    f"設定ファイルに書かれた鍵 ({place.name}) がバックアップの鍵と違います。"
                    f"何も変更していません (the key configured as text for {place.name} is not "
                    "the archive's: remove it from the configuration to restore the key file)"
                )
            continue
        if place.path is None:
            raise ConfigError(f"{place.setting} must be set to restore the {place.name} key")
        found = place.read(place.path)
        if found is None:
            to_write.append(place)
        elif found == raw:
            done.already.append(place.path)
        else:
            raise BackupError(
                f"鍵ファイル {place.path} はバックアップの鍵と違うため上書きしません。何も変更"
                f"していません (key file {place.path} ({place.setting}) holds another key; "
                "move it away to restore the archive's)"
            )
    return to_write


async def _refuse_non_empty(dsn: str) -> int:
    """The server's major version; refuses a database that holds any table."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(
            f"復元先のデータベース {redact(dsn)} に接続できません。何も変更していません "
            f"(cannot reach the target database: {exc})"
        ) from None
    try:
        relations = await conn.fetchval(
            """
            SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            """
        )
        if relations:
            raise BackupError(
                f"復元先のデータベースが空ではありません (テーブルなど {relations} 個)。空の"
                "データベースを指定してください。何も変更していません (the target database is "
                "not empty; restore only into a new, empty database)"
            )
        return await _server_major(conn)
    finally:
        await conn.close()


async def restore(settings: Settings, dsn: str, archive: Path, backup_key: bytes) -> Restored:
    """Restore ``archive`` into the empty database ``dsn`` and its keys to the configured
    places (see the module's text); on a refusal nothing was changed."""
    manifest = await asyncio.to_thread(verify_archive, archive, backup_key)
    done = Restored(manifest)
    keys = _manifest_keys(manifest)
    major = await _refuse_non_empty(dsn)
    to_write = _plan_keys(settings, keys, done)
    dumped = str(manifest.get("pg_dump_version", "0")).split(".")[0]
    tool, _ = await asyncio.to_thread(
        pg_tools.find_tool, "pg_restore", settings.backup.pg_bin_dir, not settings.database.url,
        max(major, int(dumped) if dumped.isdigit() else 0),
    )
    try:
        with archive.open("rb") as fh:
            _, pieces = open_archive(fh, backup_key)
            await pg_tools.restore(tool, dsn, pieces)
    except OSError as exc:
        raise BackupError(f"バックアップ {archive} を読めません ({exc.strerror})") from None
    for place in to_write:
        assert place.path is not None
        place.write(place.path, keys[place.name])
        done.written.append(place.path)
    _restore_checkpoints(settings, manifest, done)
    return done


def _restore_checkpoints(settings: Settings, manifest: dict[str, Any], done: Restored) -> None:
    text = manifest.get("audit_checkpoints")
    target = settings.staff.audit_checkpoints
    if not isinstance(text, str) or not target:
        return
    path = Path(target)
    if path.exists():
        if path.read_text("utf-8") != text:
            done.notes.append(
                f"監査ログのチェックポイント {path} はそのままにしました。バックアップより新しい"
                "記録があれば、検証でその欠落が示されます (kept the existing checkpoint file)"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text, "utf-8")
    path.chmod(0o600)
    done.written.append(path)


async def after_restore(
    pool: asyncpg.Pool, settings: Settings, now: datetime, actor: Principal, archive: Path,
    done: Restored,
) -> audit.Verification:
    """On the restored database (migrated by the pool): check the people key, record the
    restore in the audit log and verify the restored chain with the restored key."""
    await check_key(pool, Sealer(load_key(settings.people.key, settings.people.key_file,
                                          create=False)))
    key = await load_audit_key(pool, settings.staff)
    found = await audit.verify(pool, key)
    await audit.record(
        pool, key, now, actor, RESTORE_ACTION, archive.name, audit.Result.OK,
        f"taken={done.manifest.get('created_at')} host={done.manifest.get('host')} "
        f"chain_ok={found.ok} keys_written={len(done.written)}",
    )
    return found
