"""The daily backup that ``mamoru serve`` runs on one worker when ``[backup] daily_at`` is set.

Every day at that time (Japan time) it takes a backup into ``[backup] dir`` exactly as
``mamoru backup`` does (engine/staff/backup.py: archive, keys, generations) and records it in
the audit log. The gauge ``mamoru_backup_last_success_timestamp`` holds the time of the newest
archive (set at start from the folder, so a restarted serve does not look as if it never backed
up); a failed backup is logged as an ERROR, recorded in the audit log as failed where the
database answers, and sets ``mamoru_backup_failed`` to 1 until the next one succeeds.

Several hosts of one serve each take their own backup when each sets ``daily_at``: set it on
one host (docs/operation.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from engine.platform.backup_files import archives
from engine.platform.clock import JST, Clock
from engine.platform.config import Settings
from engine.platform.errors import MamoruError
from engine.platform.metrics import BACKUP_FAILED, BACKUP_LAST_SUCCESS
from engine.platform.outage import DATABASE_ERRORS
from engine.platform.service_status import record_status
from engine.staff import audit
from engine.staff.backup import BACKUP_ACTION, Made, record, take_backup
from engine.staff.models import CLI_PRINCIPAL

log = logging.getLogger(__name__)
# The row of service_status that /readyz reads (engine/delivery/health.py).
BACKUP_STATUS = "backup"

_FAILURES: tuple[type[BaseException], ...] = (MamoruError, OSError, *DATABASE_ERRORS)
_AUDIT_FAILURES: tuple[type[BaseException], ...] = (MamoruError, *DATABASE_ERRORS)

SERVE_PRINCIPAL = replace(CLI_PRINCIPAL, name="serve (daily backup)")


def next_run(now: datetime, daily_at: str) -> datetime:
    """The next moment after ``now`` that is ``daily_at`` ("HH:MM") in Japan time."""
    hour, minute = (int(part) for part in daily_at.strip().split(":"))
    local = now.astimezone(JST)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= local:
        due += timedelta(days=1)
    return due


class BackupKeeper:
    """A task beside the runner; ``stop`` ends it."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.folder = Path(settings.backup.dir)
        self.last: Made | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        found = archives(self.folder)
        if found:
            BACKUP_LAST_SUCCESS.set(found[-1].taken_at.timestamp())
        self._task = asyncio.create_task(self._loop(), name="backup-keeper")

    async def backup_once(self) -> Made | None:
        """One backup (gauges, log and audit entry set); None when it failed."""
        now = self.clock.now()
        try:
            made = await take_backup(
                self.pool, self.settings, self.settings.database.url, self.folder, now
            )
        except _FAILURES as exc:
            BACKUP_FAILED.set(1)
            log.error("バックアップに失敗しました / daily backup failed: %s", exc)
            await self._status(False, now, str(exc))
            with contextlib.suppress(*_AUDIT_FAILURES):
                await record(self.pool, self.settings, now, SERVE_PRINCIPAL, BACKUP_ACTION,
                             "", audit.Result.FAILED, str(exc))
            return None
        BACKUP_FAILED.set(0)
        BACKUP_LAST_SUCCESS.set(made.at.timestamp())
        await self._status(True, made.at, made.path.name)
        log.warning("バックアップを作成しました / backup written: %s (%d bytes, %d old removed)",
                    made.path, made.size, len(made.removed))
        try:
            await record(self.pool, self.settings, now, SERVE_PRINCIPAL, BACKUP_ACTION,
                         made.path.name, audit.Result.OK, made.summary())
        except _AUDIT_FAILURES as exc:
            log.error("バックアップを監査ログに記録できません / cannot audit the backup: %s", exc)
        self.last = made
        return made

    async def _status(self, ok: bool, at: datetime, detail: str) -> None:
        """The outcome where /readyz reads it (engine/delivery/health.py), from any process."""
        try:
            await record_status(self.pool, BACKUP_STATUS, ok, at, detail)
        except DATABASE_ERRORS as exc:
            log.warning("バックアップの結果を記録できません / backup status not recorded: %s", exc)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock.now()
            wait = (next_run(now, self.settings.backup.daily_at) - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
            if self._stop.is_set():
                return
            await self.backup_once()

    async def stop(self) -> None:
        """At once: a backup in progress is cancelled (its temporary file removed)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
