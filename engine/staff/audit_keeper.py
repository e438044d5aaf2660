"""The audit log's daily care that ``mamoru serve`` runs on one worker: prune, verify,
checkpoint.

Once when serve starts and then once every ``interval`` (a day):

1. prune entries older than ``[staff] audit_keep`` (``mamoru audit prune`` by hand);
2. verify the chain and the checkpoints (``mamoru audit verify``): the gauge
   ``mamoru_audit_chain_intact`` is 1 while they hold and 0 once they do not, the result is
   kept in ``service_status`` for ``/readyz``, and a broken chain is logged as an ERROR naming
   the first bad entry, every day until someone looks;
3. append the chain's newest entry to ``[staff] audit_checkpoints`` (``mamoru audit
   checkpoint``), so that removing the newest entries later shows.

A step the database could not answer is logged and tried again at the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg

from engine.platform.clock import Clock
from engine.platform.metrics import AUDIT_CHAIN_INTACT
from engine.platform.outage import DATABASE_ERRORS
from engine.platform.service_status import record_status
from engine.staff import audit
from engine.staff.audit_checkpoints import verify_all, write_checkpoint

log = logging.getLogger(__name__)

DAY = 86400.0
# The row of service_status (engine/platform/service_status.py) /readyz reads.
AUDIT_STATUS = "audit"


class AuditKeeper:
    """A task beside the runner; ``stop`` ends it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        key: bytes,
        keep: float,
        checkpoints: Path | None,
        interval: float = DAY,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.key = key
        # config.py refuses less than 90 days; audit.prune refuses it again.
        self.keep = timedelta(seconds=keep)
        self.checkpoints = checkpoints
        self.interval = interval
        self.runs = 0
        self.last: audit.Verification | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="audit-keeper")

    async def prune_once(self) -> int | None:
        """Entries removed, or None when the database did not answer."""
        try:
            removed = await audit.prune(self.pool, self.key, self.clock.now(), self.keep)
        except DATABASE_ERRORS as exc:
            log.warning("監査ログの整理に失敗しました。次回再試行します / audit prune failed, "
                        "retrying at the next turn: %s", exc)
            return None
        # serve configures no logging, so only WARNING and above reach the operator: a prune
        # that removed entries is worth that one line a day; one that removed none is not.
        log.log(
            logging.WARNING if removed else logging.INFO,
            "監査ログの整理: %d 件を削除 (保存期間 %d 日) / audit prune removed %d entries",
            removed, self.keep.days, removed,
        )
        return removed

    async def verify_once(self) -> audit.Verification | None:
        """The chain and checkpoints verified (gauge and log set), None when not answered."""
        try:
            found = await verify_all(self.pool, self.key, self.checkpoints)
        except DATABASE_ERRORS as exc:
            log.warning("監査ログの検証に失敗しました。次回再試行します / audit verify failed, "
                        "retrying at the next turn: %s", exc)
            return None
        AUDIT_CHAIN_INTACT.set(1 if found.ok else 0)
        try:
            await record_status(self.pool, AUDIT_STATUS, found.ok, self.clock.now(),
                                "" if found.ok else found.summary_ja())
        except DATABASE_ERRORS as exc:
            log.warning("監査ログの検証結果を記録できません / audit status not recorded: %s", exc)
        if not found.ok:
            log.error("監査ログが壊れています / audit log broken: %s", found.summary_ja())
        self.last = found
        return found

    async def checkpoint_once(self) -> None:
        if self.checkpoints is None:
            return
        try:
            await write_checkpoint(self.pool, self.key, self.checkpoints, self.clock.now())
        except DATABASE_ERRORS as exc:
            log.warning("監査ログのチェックポイントを書けませんでした / audit checkpoint failed: "
                        "%s", exc)
        except OSError as exc:
            log.error("監査ログのチェックポイント %s を書けません / cannot write the audit "
                      "checkpoint: %s", self.checkpoints, exc.strerror)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.prune_once()
                verified = await self.verify_once()
                # A broken chain is not checkpointed: its head would vouch for the damage.
                if verified is not None and verified.ok:
                    await self.checkpoint_once()
            finally:
                self.runs += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        """At once: a step in progress is cancelled, which rolls its transaction back (it
        would otherwise hold serve's shutdown for as long as an unreachable database takes to
        time out)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
