"""The deliveries a runner holds, and the writer that records their outcomes.

Every claimed delivery is held here until its outcome is written. Outcomes are written in
batches (one statement each). The writer never gives up: any error is logged and the batch is
kept and written again after a back-off, and while writing fails ``writable`` is cleared, which
stops the runner from claiming and its lanes from sending — no mail leaves whose outcome could
not be recorded. Leases of deliveries that wait long in a lane are renewed; a delivery whose
lease was taken over by another runner (after an outage) is dropped here, never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from engine.bounce import CATEGORIES
from engine.bounce.suppression import FailedVerdict, Suppressions
from engine.platform import metrics
from engine.platform.clock import Clock
from engine.platform.config import QueueSettings
from engine.platform.outage import DATABASE_ERRORS, UNREACHABLE, recover
from engine.queue import AttemptResult, ClaimedDelivery, Outcome, Queue

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 5.0


@dataclass
class RunStats:
    claimed: int = 0
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0
    first_claim: float | None = None
    last_record: float | None = None


@dataclass
class Claim:
    """A delivery this runner holds: claimed, and not yet given an outcome."""

    delivery: ClaimedDelivery
    claimed_at: float
    own_fault_retries: int = 0
    # The latest attempt that left the delivery here (noted, not settled): shown if it expires.
    last_note: AttemptResult | None = None


class Recorder:
    def __init__(
        self,
        name: str,
        queue: Queue,
        settings: QueueSettings,
        suppressions: Suppressions,
        clock: Clock,
        stats: RunStats,
        on_settled: Callable[[], None],
        on_delivered: Callable[[str], None] = lambda _domain: None,
    ) -> None:
        self.name = name
        self.queue = queue
        self._q = settings
        self._suppressions = suppressions
        self._clock = clock
        self.stats = stats
        self._on_settled = on_settled
        self._on_delivered = on_delivered
        self.held: dict[int, Claim] = {}
        self._results: list[AttemptResult] = []
        # Attempts that do not settle their delivery, logged with the next batch.
        self._notes: list[AttemptResult] = []
        # Final failures waiting to be told to the suppression list, after their outcome.
        self._failures: list[FailedVerdict] = []
        self._ready = asyncio.Event()
        # One flush at a time: two would take the same batch, write it twice and then drop
        # the next batch unwritten.
        self._lock = asyncio.Lock()
        #: Set while outcomes can be written; cleared from the first failed write until the
        #: next one that succeeds.
        self.writable = asyncio.Event()
        self.writable.set()
        self._renewing = False
        # The counters' children, looked up once rather than by label on every outcome.
        self._counted = {o: metrics.DELIVERIES.labels(o.value) for o in Outcome}

    # --- holding ------------------------------------------------------------------------

    def hold(self, delivery: ClaimedDelivery) -> Claim:
        claim = Claim(delivery, time.monotonic())
        self.held[delivery.id] = claim
        return claim

    def add(self, result: AttemptResult) -> None:
        """Settle a held delivery with ``result``; it is written with the next batch."""
        claim = self.held.pop(result.delivery_id, None)
        if claim is None:
            return  # given back to the queue already; its outcome is no longer ours to write
        if result.outcome is Outcome.DELIVERED:
            self._on_delivered(claim.delivery.domain)
        elif result.outcome is Outcome.FAILED and result.reason and result.category:
            category = CATEGORIES.get(result.category)
            self._failures.append(
                FailedVerdict(
                    claim.delivery.recipient, result.delivery_id, result.reason,
                    result.category, bool(category and category.hard),
                )
            )
        self._counted[result.outcome].inc()
        if result.outcome is Outcome.FAILED:
            metrics.FAILED_BY_CATEGORY.labels(result.category or "other").inc()
        self._results.append(result)
        if len(self._results) >= self._q.flush_batch:
            self._ready.set()
        self._on_settled()

    def note(self, result: AttemptResult) -> None:
        """Log an attempt that leaves the delivery held (it goes back to its lane)."""
        claim = self.held.get(result.delivery_id)
        if claim is not None:
            claim.last_note = result
            self._notes.append(result)

    def lease_valid(self, claim: Claim) -> bool:
        """True while ``claim``'s lease is known to be ours: renewed (or taken) less than
        90% of a lease ago. A mail is sent only under a lease known to be valid."""
        return time.monotonic() - claim.claimed_at < self._q.lease_seconds * 0.9

    def drop(self, ids: set[int]) -> None:
        """Forget deliveries that are no longer ours (lease taken over): never sent by us."""
        for i in ids:
            self.held.pop(i, None)

    @property
    def pending(self) -> int:
        """Outcomes not written yet."""
        return len(self._results)

    # --- writing ------------------------------------------------------------------------

    async def run(self) -> None:
        """Write outcomes every ``flush_interval`` (or as soon as a batch is full)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout=self._q.flush_interval)
            self._ready.clear()
            await self.flush()

    async def flush(self, deadline: float | None = None) -> bool:
        """Write every outcome held; retries with back-off until it succeeds or, if given,
        until the monotonic ``deadline``. True when nothing is left unwritten."""
        async with self._lock:
            return await self._flush_locked(deadline)

    async def _flush_locked(self, deadline: float | None) -> bool:
        delay = _BACKOFF_FIRST
        while self._results or self._notes:
            batch = self._results[: self._q.flush_batch]
            notes = self._notes[: self._q.flush_batch]
            try:
                # Notes first: the final outcome of the same delivery must come after them.
                await self.queue.note(self.name, notes)
                del self._notes[: len(notes)]
                await self.queue.record(self.name, batch)
            except Exception as exc:
                self._write_failed(len(batch), exc)
                await recover(self.queue.pool)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if not self.writable.is_set():
                log.warning("outcomes are written again (%d waiting) / 配信結果の記録を再開",
                            len(self._results))
                self.writable.set()
                # The runner waits for this to claim again: tell it now, not at its next poll
                # (up to 5 s after a failover or a database restart).
                self._on_settled()
            delay = _BACKOFF_FIRST
            del self._results[: len(batch)]
            await self._tell_suppressions()
            for r in batch:
                if r.outcome is Outcome.DELIVERED:
                    self.stats.delivered += 1
                elif r.outcome is Outcome.DEFERRED:
                    self.stats.deferred += 1
                else:
                    self.stats.failed += 1
            self.stats.last_record = time.monotonic()
        return True

    def _write_failed(self, count: int, exc: Exception) -> None:
        first = self.writable.is_set()
        self.writable.clear()
        if not first:
            return
        if isinstance(exc, DATABASE_ERRORS):
            log.error("%s: writing %d outcomes failed (%s: %s); sending paused until they are "
                      "written", UNREACHABLE, count, type(exc).__name__, exc)
        else:
            log.exception("writing %d outcomes failed unexpectedly; sending paused, retrying "
                          "/ 配信結果を記録できません。送信を止めて再試行します", count)

    async def _tell_suppressions(self) -> None:
        """Hand the final failures written so far to the suppression rules (hard failures
        suppress the address at once, soft ones count toward the threshold)."""
        if not self._failures:
            return
        batch, self._failures = self._failures, []
        try:
            await self._suppressions.record_verdicts(batch, source="smtp")
        except DATABASE_ERRORS as exc:
            # The outcomes are written; only the list missed these. Keep them for next time.
            log.warning("updating the suppression list failed, will retry: %s", exc)
            self._failures = batch + self._failures

    # --- leases -------------------------------------------------------------------------

    def renew_stale_leases(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """Deliveries held for half their lease get a new one, so that no lease runs out while
        the mail waits here (another runner would then send it too)."""
        if self._renewing:
            return
        now_mono = time.monotonic()
        limit = now_mono - self._q.lease_seconds / 2
        stale = [c for c in self.held.values() if c.claimed_at <= limit]
        if stale:
            self._renewing = True
            spawn(self._extend(stale))

    async def _extend(self, stale: list[Claim]) -> None:
        try:
            ids = [c.delivery.id for c in stale]
            kept = await self.queue.extend_leases(
                self.name, ids, self._clock.now(), self._q.lease_seconds
            )
        except DATABASE_ERRORS as exc:
            log.warning("renewing %d leases failed, will retry: %s", len(stale), exc)
            return
        finally:
            self._renewing = False
        now_mono = time.monotonic()
        for c in stale:
            c.claimed_at = now_mono
        lost = {c.delivery.id for c in stale} - kept
        if lost:
            log.warning("%d deliveries were taken over by another runner while waiting here; "
                        "they are left to it", len(lost))
            self.drop(lost)
