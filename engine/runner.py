"""The delivery loop: claim -> route -> render -> send -> record, with graceful shutdown.

One ``Runner`` per process. It claims as many due deliveries as it has free sending slots (so a
claimed row never waits long in memory under its lease), sends each as its own task, and hands
outcomes to a writer task that records them in batches. It wakes on the queue's NOTIFY, when a
slot frees, or at the polling interval, whichever comes first.

Shutdown (SIGTERM, or ``stop()``): claiming stops; mails in flight get ``delivery.shutdown_grace``
seconds to finish; whatever is still unsent after that is released back to the queue, due at
once; every outcome is written before ``run()`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine import metrics
from engine.address import smtp_path
from engine.bounce import category_for_reason, classify_reply
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.delivery import Envelope, SendResult, SourceAddress, Transport
from engine.dkim import DkimSigner, dkim_settings
from engine.errors import PermanentRoutingError, RoutingError
from engine.message import MessageTemplate, build_template
from engine.queue import (
    NOTIFY_CHANNEL,
    AttemptResult,
    BroadcastContent,
    ClaimedDelivery,
    Outcome,
    Queue,
)
from engine.queue.retry import next_attempt
from engine.routing import Router
from engine.verp import return_path

log = logging.getLogger(__name__)

# Broadcast templates kept in memory; a runner rarely works on more than a few at once.
_TEMPLATE_CACHE = 64
_DEPTH_INTERVAL = 5.0


@dataclass
class RunStats:
    claimed: int = 0
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0
    first_claim: float | None = None
    last_record: float | None = None


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Runner:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        router: Router,
        transport: Transport,
        verp_secret: bytes,
        clock: Clock | None = None,
        name: str | None = None,
        dsn: str | None = None,
        signer: DkimSigner | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.router = router
        self.transport = transport
        self.clock = clock or SystemClock()
        self.name = name or runner_name()
        self.stats = RunStats()
        self._verp_secret = verp_secret
        self._signer = signer
        self._sign_per_recipient = dkim_settings(settings.dkim).sign_per_recipient
        self._dsn = dsn
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._results: list[AttemptResult] = []
        self._results_ready = asyncio.Event()
        # One flush at a time: two would take the same batch, write it twice and then drop
        # the next batch unwritten.
        self._flush_lock = asyncio.Lock()
        self._templates: OrderedDict[int, MessageTemplate] = OrderedDict()
        self._contents: dict[int, BroadcastContent] = {}

    def stop(self) -> None:
        """Ask for a graceful shutdown; ``run()`` returns once it is done."""
        self._stopping.set()
        self._wake.set()

    async def run(self, exit_when_idle: bool = False) -> RunStats:
        q = self.settings.queue
        writer = asyncio.create_task(self._write_outcomes(), name="mamoru-writer")
        depth = (
            asyncio.create_task(self._report_depth(), name="mamoru-depth")
            if self.settings.metrics.listen
            else None
        )
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                free = self.settings.delivery.concurrency - len(self._inflight)
                want = min(free, q.claim_batch)
                claimed: list[ClaimedDelivery] = []
                if want > 0:
                    claimed = await self.queue.claim(
                        self.name, want, self.clock.now(), q.lease_seconds
                    )
                    if claimed:
                        await self._start(claimed)
                        if len(claimed) == want:
                            continue  # there may be more due: claim again as slots allow
                if exit_when_idle and not self._inflight and not claimed:
                    await self._flush()
                    if not await self.queue.has_due(self.clock.now()):
                        break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=q.poll_interval)
        finally:
            if depth is not None:
                depth.cancel()
            await self._shut_down(writer, listener)
        return self.stats

    async def _start(self, claimed: list[ClaimedDelivery]) -> None:
        missing = {d.broadcast_id for d in claimed} - self._contents.keys()
        if missing:
            self._contents.update(await self.queue.broadcast_contents(sorted(missing)))
        now = time.monotonic()
        if self.stats.first_claim is None:
            self.stats.first_claim = now
        self.stats.claimed += len(claimed)
        metrics.CLAIMED.inc(len(claimed))
        for d in claimed:
            task = asyncio.create_task(self._deliver(d))
            self._inflight[d.id] = task
            task.add_done_callback(functools.partial(self._finished, d.id))

    def _finished(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(delivery_id, None)
        self._wake.set()

    async def _deliver(self, d: ClaimedDelivery) -> None:
        try:
            await self._attempt(d)
        except Exception as exc:  # a bug must not leave the delivery leased for minutes
            log.exception("delivery %d: unexpected error", d.id)
            self._add_result(
                self._temporary(d, self.clock.now(), None, None,
                                f"internal error: {type(exc).__name__}: {exc}", None,
                                "systemerror", category_for_reason("systemerror"))
            )

    async def _attempt(self, d: ClaimedDelivery) -> None:
        started = time.monotonic()
        now = self.clock.now()
        if now >= d.expires_at:
            text = "not delivered within the maximum age"
            if d.last_text:
                text = f"{text}; last reply: {d.last_text}"
            self._add_result(
                AttemptResult(
                    d.id, Outcome.FAILED, now, d.last_code, d.last_status, text, None,
                    "expired", counts=False, category=category_for_reason("expired"),
                )
            )
            return
        try:
            route = await self.router.route(d.domain)
        except PermanentRoutingError as exc:
            self._add_result(
                AttemptResult(
                    d.id, Outcome.FAILED, now, None, None, str(exc), None, "hostunknown",
                    category=category_for_reason("hostunknown"),
                )
            )
            return
        except RoutingError as exc:
            self._add_result(
                self._temporary(
                    d, now, None, None, str(exc), None, "networkerror",
                    category_for_reason("networkerror"),
                )
            )
            return
        template = self._template(d.broadcast_id)
        envelope = Envelope(
            sender=return_path(self._verp_secret, d.id, self._bounce_domain(template)),
            recipient=smtp_path(d.recipient),
            data=template.render(d.recipient, d.id),
        )
        # The lease must outlive the attempt: bound the attempt well inside it.
        budget = self.settings.queue.lease_seconds * 0.8
        try:
            async with asyncio.timeout(budget):
                result = await self.transport.send(route.destinations, envelope, SourceAddress())
        except TimeoutError:
            result = SendResult(
                Outcome.DEFERRED, None, None, f"attempt took longer than {budget:.0f} s",
                "DATA", None,
            )
        metrics.SEND_SECONDS.observe(time.monotonic() - started)
        self._add_result(self._result_of(d, result))

    def _result_of(self, d: ClaimedDelivery, r: SendResult) -> AttemptResult:
        now = self.clock.now()
        if r.outcome is Outcome.DELIVERED:
            return AttemptResult(d.id, r.outcome, now, r.code, r.status, r.text, r.host)
        verdict = classify_reply(r.code, r.status, r.text, r.command, d.recipient, d.domain)
        if r.outcome is Outcome.DEFERRED:
            return self._temporary(
                d, now, r.code, r.status, r.text, r.host, verdict.reason, verdict.category
            )
        return AttemptResult(
            d.id, r.outcome, now, r.code, r.status, r.text, r.host, verdict.reason,
            category=verdict.category,
        )

    def _temporary(
        self,
        d: ClaimedDelivery,
        now: datetime,
        code: int | None,
        status: str | None,
        text: str,
        host: str | None,
        reason: str | None = None,
        category: str | None = None,
    ) -> AttemptResult:
        q = self.settings.queue
        when = next_attempt(now, d.attempts + 1, q.retry_base, q.retry_max, d.expires_at)
        if when is None:
            return AttemptResult(
                d.id, Outcome.FAILED, now, code, status, text, host, "expired",
                category=category_for_reason("expired"),
            )
        return AttemptResult(
            d.id, Outcome.DEFERRED, now, code, status, text, host, reason,
            next_attempt_at=when, category=category,
        )

    def _add_result(self, result: AttemptResult) -> None:
        metrics.DELIVERIES.labels(result.outcome.value).inc()
        self._results.append(result)
        if len(self._results) >= self.settings.queue.flush_batch:
            self._results_ready.set()

    def _template(self, broadcast_id: int) -> MessageTemplate:
        template = self._templates.get(broadcast_id)
        if template is None:
            content = self._contents[broadcast_id]
            template = build_template(
                content, self.clock, self.settings.message.id_domain,
                self._signer, self._sign_per_recipient,
            )
            self._templates[broadcast_id] = template
            while len(self._templates) > _TEMPLATE_CACHE:
                old, _ = self._templates.popitem(last=False)
                self._contents.pop(old, None)
        else:
            self._templates.move_to_end(broadcast_id)
        return template

    def _bounce_domain(self, template: MessageTemplate) -> str:
        return self.settings.message.bounce_domain or template.sender_domain

    async def _write_outcomes(self) -> None:
        interval = self.settings.queue.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._results_ready.wait(), timeout=interval)
            self._results_ready.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._results:
            batch = self._results[: self.settings.queue.flush_batch]
            try:
                await self.queue.record(self.name, batch)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                # Keep the outcomes and try again: losing them would send those mails twice.
                log.warning("writing %d outcomes failed, will retry: %s", len(batch), exc)
                await asyncio.sleep(1.0)
                continue
            del self._results[: len(batch)]
            for r in batch:
                if r.outcome is Outcome.DELIVERED:
                    self.stats.delivered += 1
                elif r.outcome is Outcome.DEFERRED:
                    self.stats.deferred += 1
                else:
                    self.stats.failed += 1
            self.stats.last_record = time.monotonic()

    async def _report_depth(self) -> None:
        """Keep the queue-depth gauge current (one cheap grouped count every few seconds)."""
        while True:
            try:
                for state, n in (await self.queue.state_counts()).items():
                    metrics.QUEUE_DEPTH.labels(state.value).set(n)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("counting the queue for metrics failed: %s", exc)
            await asyncio.sleep(_DEPTH_INTERVAL)

    async def _listen(self) -> asyncpg.Connection | None:
        """LISTEN for new broadcasts on a connection of its own; polling covers its absence."""
        if self._dsn is None:
            return None
        try:
            conn: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=10)
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("LISTEN unavailable, polling every %.1f s: %s",
                        self.settings.queue.poll_interval, exc)
            return None
        return conn

    async def _shut_down(
        self, writer: asyncio.Task[None], listener: asyncpg.Connection | None
    ) -> None:
        unsent: list[int] = []
        if self._inflight:
            _, pending = await asyncio.wait(
                list(self._inflight.values()), timeout=self.settings.delivery.shutdown_grace
            )
            # Claimed but without an outcome: given back below, due at once.
            unsent = [i for i, task in self._inflight.items() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await self._flush()
        if unsent:
            await self.queue.release(self.name, unsent, self.clock.now())
            self.stats.released += len(unsent)
        await self.transport.close()
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
