"""The daily prune of the audit log that ``mamoru serve`` runs (``[staff] audit_keep``).

``mamoru audit prune`` does the same by hand. The first prune runs when serve starts, then
one every ``interval`` (a day); each logs how many entries it removed. A failed prune (the
database away) is logged and tried again at the next turn: the log only grows meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import asyncpg

from engine.platform.clock import Clock
from engine.platform.outage import DATABASE_ERRORS
from engine.staff import audit

log = logging.getLogger(__name__)

DAY = 86400.0


class AuditPruner:
    """A task beside the runner; ``stop`` ends it."""

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, keep: float, interval: float = DAY
    ) -> None:
        self.pool = pool
        self.clock = clock
        # config.py refuses less than 90 days; audit.prune refuses it again.
        self.keep = timedelta(seconds=keep)
        self.interval = interval
        self.runs = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="audit-prune")

    async def prune_once(self) -> int | None:
        """Entries removed, or None when the database did not answer."""
        try:
            removed = await audit.prune(self.pool, self.clock.now(), self.keep)
        except DATABASE_ERRORS as exc:
            log.warning("監査ログの整理に失敗しました。次回再試行します / audit prune failed, "
                        "retrying at the next turn: %s", exc)
            return None
        finally:
            self.runs += 1
        # serve configures no logging, so only WARNING and above reach the operator: a prune
        # that removed entries is worth that one line a day; one that removed none is not.
        log.log(
            logging.WARNING if removed else logging.INFO,
            "監査ログの整理: %d 件を削除 (保存期間 %d 日) / audit prune removed %d entries",
            removed, self.keep.days, removed,
        )
        return removed

    async def _loop(self) -> None:
        while not self._stop.is_set():
            await self.prune_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        """At once: a prune in progress is cancelled, which rolls its transaction back (it
        would otherwise hold serve's shutdown for as long as an unreachable database takes to
        time out)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
