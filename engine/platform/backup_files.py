"""Backup archives on disk: their names (the time they were taken, Japan time), writing one
atomically (a private temporary file renamed into place, mode 0600) and the generations kept.

An archive is ``mamoru-YYYYMMDD-HHMMSS.backup``. The policy keeps, for the newest
``keep_daily`` days on which archives were taken, the newest archive of each day, and removes
every other archive of that name form in the folder (other files are never touched).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from engine.platform.backup_archive import BackupError
from engine.platform.clock import JST
from engine.platform.errors import ConfigError

_NAME = re.compile(r"^mamoru-(\d{8}-\d{6})\.backup$")
SUFFIX = ".backup"


@dataclass(frozen=True)
class Archive:
    path: Path
    taken_at: datetime

    @property
    def day(self) -> date:
        return self.taken_at.date()


def archive_name(moment: datetime) -> str:
    return f"mamoru-{moment.astimezone(JST):%Y%m%d-%H%M%S}{SUFFIX}"


def archives(folder: Path) -> list[Archive]:
    """The archives in ``folder``, oldest first."""
    found: list[Archive] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        m = _NAME.match(entry.name)
        if m and entry.is_file():
            taken = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=JST)
            found.append(Archive(entry, taken))
    found.sort(key=lambda a: a.taken_at)
    return found


def to_prune(found: list[Archive], keep_daily: int) -> list[Archive]:
    """What the policy removes from ``found`` (oldest first)."""
    newest_of_day: dict[date, Archive] = {}
    for a in found:
        newest_of_day[a.day] = a  # oldest first: the last one seen is the newest
    kept_days = sorted(newest_of_day, reverse=True)[:keep_daily]
    kept = {newest_of_day[d].path for d in kept_days}
    return [a for a in found if a.path not in kept]


def prune(folder: Path, keep_daily: int) -> list[Path]:
    """Remove the archives the policy does not keep; returns them."""
    removed = []
    for a in to_prune(archives(folder), keep_daily):
        a.path.unlink(missing_ok=True)
        removed.append(a.path)
    return removed


@contextlib.contextmanager
def new_archive(folder: Path, name: str) -> Iterator[tuple[BinaryIO, Path]]:
    """A private temporary file in ``folder``; when the block ends without an error it becomes
    ``folder/name`` (never replacing a file of that name), else it is removed."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"backup folder {folder} cannot be created: {exc.strerror}") from None
    target = folder / name
    temp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"backup folder {folder} is not writable: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh, target
            fh.flush()
            os.fsync(fh.fileno())
        # link + unlink: unlike rename, never replaces an archive of the same second.
        try:
            os.link(temp, target)
        except FileExistsError:
            raise BackupError(
                f"同じ時刻のバックアップ {target} がもうあります。少し待ってからやり直してください "
                "(an archive of this second exists)"
            ) from None
        _sync_folder(folder)
    finally:
        temp.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
