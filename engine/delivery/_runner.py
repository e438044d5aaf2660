"""The delivery loop: claim -> route -> lanes (shape, sign, send) -> record, with graceful
shutdown.

One ``Runner`` per process. It claims as many due deliveries as it has free slots
(``delivery.concurrency``), so a claimed row never waits long in memory under its lease. Each
claimed delivery is routed (MX or transport map) and handed to its lane (``_lanes``); the
outcome stage (``_outcomes``) hands each result to the recorder (``_recorder``), which writes
outcomes in batches. A lane that holds many waiting deliveries stops the claim from taking more
for its domains (emergency mail excepted), so one slow carrier does not fill the runner and hold
up the others.

The database may go away (a restart, an outage): the claim waits and retries with a bounded
back-off, logging one line; while outcomes cannot be written nothing is claimed or sent.

Shutdown (SIGTERM, or ``stop()``), obeyed at every moment: claiming stops; mails in flight get
``delivery.shutdown_grace`` seconds to finish; whatever is still unsent after that is released
back to the queue, due at once; every outcome is written before ``run()`` returns (or, if the
database stays away, for as long as the grace allows, and what is left is said in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import datetime

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.delivery._broadcast_cache import BroadcastCache
from engine.delivery._lanes import Lanes
from engine.delivery._outcomes import Outcomes
from engine.delivery._recorder import Claim, Recorder, RunStats
from engine.delivery._reporter import Reporter
from engine.delivery._routing import Route, Router
from engine.delivery._tasks import Tasks
from engine.delivery._transport import Transport
from engine.delivery._upkeep import Upkeep
from engine.message.compose import TemplateOptions
from engine.message.dkim import DkimSigner
from engine.platform import metrics
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings
from engine.platform.db import connect
from engine.platform.errors import DkimError, NoSuchDomainError, PermanentRoutingError, RoutingError
from engine.platform.outage import DATABASE_ERRORS, OutageLog, recover
from engine.queue import CANCEL_CHANNEL, NOTIFY_CHANNEL, ClaimedDelivery, Queue, liveness
from engine.throttle import Shaper
from engine.throttle.build import unlimited_shaper

log = logging.getLogger(__name__)

# How often waiting deliveries are checked for their maximum age, and their broadcasts for a
# cancellation (NOTIFY tells at once; this covers a missed notice).
_EXPIRY_INTERVAL = 1.0
_CANCEL_POLL_INTERVAL = 2.0
_RETRY_FIRST = 0.2
_RETRY_MAX = 5.0

__all__ = ["RunStats", "Runner", "runner_name"]


def runner_name(host: str = "") -> str:
    """``host:pid:random``: unique even when a restarted process gets the pid (and container
    host name) of one that died, whose leases must still be taken back as a gone runner's."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
        shaper: Shaper | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.router = router
        self.clock = clock or SystemClock()
        self.name = name or runner_name(settings.host.name)
        self.stats = RunStats()
        self._dsn = dsn
        self._stopping = asyncio.Event()
        # Set once the runner listens for new broadcasts and is about to claim.
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self.shaper = shaper or unlimited_shaper(settings, self.clock)
        self._tasks = Tasks()
        self.upkeep = Upkeep(self.name, queue.pool, self.clock)
        self.recorder = Recorder(
            self.name, queue, settings.queue,
            Suppressions(queue.pool, queue.sealer, settings.suppression, self.clock),
            self.clock, self.stats, self._wake.set, self.upkeep.delivered_to,
        )
        # The outcome stage hands what it decides to the recorder.
        self.outcomes = Outcomes(settings.queue, self.recorder)
        self.broadcasts = BroadcastCache(
            queue, self.clock, TemplateOptions.from_settings(settings, verp_secret, signer)
        )
        self.lanes = Lanes(
            settings, self.shaper, transport, self.recorder, self.outcomes, self.broadcasts,
            verp_secret, self.clock, self._tasks, self._stopping,
        )
        self.reporter = Reporter(self.name, queue, self.shaper, self.clock, settings)
        self._listener: asyncpg.Connection | None = None
        self._outage = OutageLog(log, "runner")
        self._resolver_alerts: set[str] = set()
        self._cancelled: set[int] = set()
        self._unsigned_alerts: set[int] = set()

    @property
    def transport(self) -> Transport:
        return self.lanes.transport

    def stop(self) -> None:
        """Ask for a graceful shutdown; ``run()`` returns once it is done."""
        self._stopping.set()
        self._wake.set()

    async def run(self, exit_when_idle: bool = False) -> RunStats:
        writer = asyncio.create_task(self.recorder.run(), name="mamoru-writer")
        reporter = asyncio.create_task(self.reporter.run(), name="mamoru-report")
        # Announced before the first claim: a lease is never held by an unknown runner.
        await self.upkeep.beat()
        upkeep = asyncio.create_task(self.upkeep.run(), name="mamoru-upkeep")
        await self._listen()
        self.ready.set()
        next_expiry = next_cancel_poll = 0.0
        try:
            while not self._stopping.is_set():
                # Cleared before the claim, not before the wait: a NOTIFY that arrives while
                # claiming must still end the wait that follows.
                self._wake.clear()
                self.recorder.renew_stale_leases(self._tasks.spawn)
                if time.monotonic() >= next_expiry:
                    self.lanes.expire_overdue()
                    next_expiry = time.monotonic() + _EXPIRY_INTERVAL
                if not self.recorder.writable.is_set():
                    await self._wait(_RETRY_MAX)
                    continue
                try:
                    if self._cancelled or time.monotonic() >= next_cancel_poll:
                        await self._withdraw_cancelled()
                        next_cancel_poll = time.monotonic() + _CANCEL_POLL_INTERVAL
                    claimed = await self._claim_once()
                    if claimed is None:
                        continue  # a full batch: there may be more due
                    if exit_when_idle and not claimed and await self._idle():
                        break
                    self._database_back()
                except DATABASE_ERRORS as exc:
                    await self._database_down(exc)
                    continue
                await self._wait(self.settings.queue.poll_interval)
        finally:
            reporter.cancel()
            upkeep.cancel()
            await self._shut_down(writer)
        return self.stats

    async def _claim_once(self) -> list[ClaimedDelivery] | None:
        """Claim what is due into the free slots; None when the claim was full (claim again)."""
        q = self.settings.queue
        free = self.settings.delivery.concurrency - len(self.recorder.held)
        want = min(free, q.claim_batch)
        if want <= 0:
            return []
        full, full_of_emergency = self.lanes.full_domains()
        claimed = await self.queue.claim(
            self.name, want, self.clock.now(), q.lease_seconds, full, full_of_emergency,
        )
        if claimed:
            await self._start(claimed)
            if len(claimed) == want:
                return None
        return claimed

    async def _idle(self) -> bool:
        """True once nothing is held here and nothing is due in the queue."""
        if self.recorder.held:
            return False
        if not await self.recorder.flush(time.monotonic() + _RETRY_MAX):
            return False
        return not await liveness.has_work(self.queue.pool, self.clock.now())

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _database_down(self, exc: BaseException) -> None:
        await recover(self.queue.pool)
        self._outage.failed(exc)
        await self._wait(min(_RETRY_MAX, max(_RETRY_FIRST, self._outage.down_for / 4)))

    def _database_back(self) -> None:
        if self._outage.down:
            self._outage.succeeded()
            if self._listener is None or self._listener.is_closed():
                self._tasks.spawn(self._listen())

    async def _start(self, claimed: list[ClaimedDelivery]) -> None:
        await self.broadcasts.load(d.broadcast_id for d in claimed)
        now = time.monotonic()
        if self.stats.first_claim is None:
            self.stats.first_claim = now
        self.stats.claimed += len(claimed)
        metrics.CLAIMED.inc(len(claimed))
        now_wall = self.clock.now()
        for d in claimed:
            claim = self.recorder.hold(d)
            # A known route (the transport map, a cached MX answer: nearly always) places the
            # delivery at once; only a lookup gets a task of its own.
            route = self.router.known(d.domain)
            if route is None:
                self._tasks.spawn(self._route(claim))
            else:
                self._place(claim, route, now_wall)

    def _sendable(self, d: ClaimedDelivery, now: datetime) -> bool:
        """False (and the outcome recorded) when ``d`` expired or has no DKIM key."""
        if now >= d.expires_at:
            self.outcomes.expired(d, now)
            return False
        try:
            self.broadcasts.template(d.broadcast_id)
        except DkimError as exc:
            self._unsigned(d, exc)
            return False
        return True

    def _place(self, claim: Claim, route: Route, now: datetime) -> None:
        """Put a routed delivery in its lane (or record why it cannot go)."""
        try:
            if self._sendable(claim.delivery, now):
                self.lanes.dispatch(claim, route)
        except Exception as exc:  # a bug must not leave the delivery leased for minutes
            log.exception("delivery %d: unexpected error", claim.delivery.id)
            self.outcomes.internal_error(claim.delivery, self.clock.now(), exc)

    async def _route(self, claim: Claim) -> None:
        """Route one delivery and put it in its lane (or record why it cannot go)."""
        d = claim.delivery
        try:
            if not self._sendable(d, self.clock.now()):
                return
            try:
                route = await self.router.route(d.domain)
            except NoSuchDomainError as exc:
                await self._no_such_domain(d, str(exc))
                return
            except PermanentRoutingError as exc:
                self.outcomes.routing_failed(d, self.clock.now(), str(exc))
                return
            except RoutingError as exc:
                self.outcomes.routing_deferred(d, self.clock.now(), str(exc))
                return
            self.lanes.dispatch(claim, route)
        except Exception as exc:  # a bug must not leave the delivery leased for minutes
            log.exception("delivery %d: unexpected error", d.id)
            self.outcomes.internal_error(d, self.clock.now(), exc)

    async def _withdraw_cancelled(self) -> None:
        """Give back what this runner holds of cancelled broadcasts (the queue fails those rows
        as cancelled on release); polled, and at once on a NOTIFY from ``broadcasts cancel``."""
        held = {c.delivery.broadcast_id for c in self.recorder.held.values()}
        if not held:
            self._cancelled.clear()
            return
        cancelled = (self._cancelled & held) | await self.queue.cancelled_among(sorted(held))
        self._cancelled.clear()
        if not cancelled:
            return
        ids = self.lanes.withdraw_broadcasts(cancelled)
        if ids:
            await self.queue.release(self.name, ids, self.clock.now())
            log.warning("配信取り消し / cancelled: %d waiting deliveries of broadcast(s) %s "
                        "withdrawn", len(ids), ", ".join(map(str, sorted(cancelled))))

    def _unsigned(self, d: ClaimedDelivery, exc: DkimError) -> None:
        """No key for the sender's domain (added after serve started): the mail waits, never
        leaves unsigned, and the operator is told once per broadcast."""
        if d.broadcast_id not in self._unsigned_alerts:
            self._unsigned_alerts.add(d.broadcast_id)
            log.error("DKIM 鍵がないため配信 %d を保留します / broadcast %d held: %s",
                      d.broadcast_id, d.broadcast_id, exc)
        self.outcomes.held_unsigned(d, self.clock.now(), str(exc))

    def _on_cancel(self, *args: object) -> None:
        payload = args[3] if len(args) > 3 else ""
        if isinstance(payload, str) and payload.isdigit():
            self._cancelled.add(int(payload))
        self._wake.set()

    async def _no_such_domain(self, d: ClaimedDelivery, text: str) -> None:
        """NXDOMAIN: final for a domain nobody knows; for a well-known provider or a domain
        that took our mail before, a resolver fault — deferred, logged, never suppressed."""
        if not await self.upkeep.domain_known(d.domain):
            self.outcomes.routing_failed(d, self.clock.now(), text)
            return
        if d.domain not in self._resolver_alerts:
            self._resolver_alerts.add(d.domain)
            log.error("DNSの不具合の可能性 / resolver fault: %s is known to take mail but the "
                      "resolver says it does not exist; deliveries to it are deferred, not "
                      "failed", d.domain)
        self.outcomes.resolver_fault(d, self.clock.now(), text)

    async def _listen(self) -> None:
        """LISTEN for new broadcasts on a connection of its own; polling covers its absence."""
        if self._dsn is None:
            return
        try:
            conn: asyncpg.Connection = await connect(self._dsn, timeout=10)
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
        except (*DATABASE_ERRORS,) as exc:
            log.warning("LISTEN unavailable, polling every %.1f s: %s",
                        self.settings.queue.poll_interval, exc)
            return
        self._listener = conn

    async def _shut_down(self, writer: asyncio.Task[None]) -> None:
        grace = self.settings.delivery.shutdown_grace
        await self._tasks.settle(grace)
        # Claimed but without an outcome: given back below, due at once.
        unsent = list(self.recorder.held)
        self.recorder.held.clear()
        self.lanes.clear()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        deadline = time.monotonic() + max(grace, 5.0)
        clean = await self.recorder.flush(deadline)
        if not clean:
            log.error("%d outcomes could not be written before stopping (database unreachable); "
                      "those deliveries are sent again when their lease runs out / "
                      "記録できなかった配信結果があります", self.recorder.pending)
        try:
            if unsent:
                await self.queue.release(self.name, unsent, self.clock.now())
                self.stats.released += len(unsent)
        except DATABASE_ERRORS as exc:
            clean = False
            log.error("releasing %d unsent deliveries failed (%s); they become due again when "
                      "their lease runs out", len(unsent), exc)
        if clean:
            # Nothing of ours is leased any more; a runner that is gone holds nothing.
            await self.upkeep.sign_off()
        await self.reporter.report_once()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
