"""The delivery loop: claim -> route -> shape -> sign -> send -> record, with graceful shutdown.

One ``Runner`` per process. It claims as many due deliveries as it has free slots
(``delivery.concurrency``), so a claimed row never waits long in memory under its lease.

Each claimed delivery is routed (MX or transport map) and put in the **lane** of its site and
destinations, ordered by priority. A lane has connection workers: each asks the shaper for a
grant (a connection slot for one egress address at that site, see ``engine/throttle``), opens
one SMTP session bound to the grant's address, and sends the lane's deliveries one after another,
taking a token from the shaper before each. The shaper hears every reply and adapts. A lane
that holds many waiting deliveries stops the claim from taking more for its domains (emergency
mail excepted), so one slow carrier does not fill the runner and hold up the others.

A deferral that is the engine's own fault (the site said "too fast") does not count as an
attempt: the delivery goes back to the front of its lane and leaves as soon as the shaper
grants a slot again. Outcomes go to a writer task that records them in batches.

Shutdown (SIGTERM, or ``stop()``): claiming stops; mails in flight get ``delivery.shutdown_grace``
seconds to finish; whatever is still unsent after that is released back to the queue, due at
once; every outcome is written before ``run()`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from engine import metrics, shaping_state
from engine.address import smtp_path
from engine.bounce import CATEGORIES, category_for_reason, classify_reply
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.delivery import Envelope, SendResult, Session, SourceAddress, Transport
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
from engine.queue.models import Priority
from engine.queue.retry import next_attempt
from engine.routing import Destination, Route, Router
from engine.suppression import FailedVerdict, Suppressions
from engine.throttle import (
    DEFAULT_POOL,
    DEFAULT_PROFILE,
    PRIORITY_BULK,
    PRIORITY_EMERGENCY,
    PRIORITY_NORMAL,
    Feedback,
    Grant,
    Profile,
    Shaper,
    Site,
    SiteMap,
    egress_pools,
    is_session_limit,
)
from engine.verp import return_path

log = logging.getLogger(__name__)

# Broadcast templates kept in memory; a runner rarely works on more than a few at once.
_TEMPLATE_CACHE = 64
_REPORT_INTERVAL = 5.0
# A connection worker whose lane is empty waits this long for more before closing.
_LINGER_SECONDS = 0.05
# A lane holding more waiting deliveries than it can send in this many seconds at the shaper's
# current rate (plus two per connection) is full: the claim takes no more for its domains until
# it drains, so the runner's slots are shared among all the sites with mail due.
_LANE_DEPTH_SECONDS = 1.0
# How often a delivery may go back to its lane after "too fast" replies before it is treated
# as an ordinary deferral.
_OWN_FAULT_RETRIES = 20

_SHAPER_PRIORITY = {
    Priority.EMERGENCY: PRIORITY_EMERGENCY,
    Priority.NORMAL: PRIORITY_NORMAL,
    Priority.BULK: PRIORITY_BULK,
}


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
class _Claim:
    """A delivery this runner holds: claimed, and not yet given an outcome."""

    delivery: ClaimedDelivery
    claimed_at: float
    own_fault_retries: int = 0


@dataclass
class _Lane:
    """Deliveries waiting for a connection to one site's destinations, most urgent first."""

    site: Site
    destinations: tuple[Destination, ...]
    pool: str = DEFAULT_POOL
    domains: set[str] = field(default_factory=set)
    pending: list[tuple[int, int, _Claim]] = field(default_factory=list)
    workers: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


def shaping_enabled(settings: Settings) -> bool:
    enabled = settings.shaping.get("enabled", True)
    if not isinstance(enabled, bool):
        from engine.errors import ConfigError

        raise ConfigError("shaping.enabled must be true or false")
    return enabled


def build_shaper(settings: Settings, clock: Clock) -> Shaper:
    """The shaper the configuration asks for: ``[shaping] enabled = false`` gives no limits
    but ``delivery.connections_per_host`` and ``delivery.messages_per_connection``."""
    if not shaping_enabled(settings):
        return unlimited_shaper(settings, clock)
    shaping = {k: v for k, v in settings.shaping.items() if k != "enabled"}
    return Shaper.from_settings(
        shaping, settings.egress, clock, default_helo=settings.delivery.helo
    )


def unlimited_shaper(settings: Settings, clock: Clock) -> Shaper:
    """One profile for every site that never limits the rate: for a relay or a test server
    that the operator controls, and for benchmarks of the engine itself."""
    d = settings.delivery
    profile = Profile(
        name=DEFAULT_PROFILE,
        max_connections=d.connections_per_host,
        max_messages_per_connection=d.messages_per_connection,
        max_rate=1e9,
        initial_rate=1e9,
    )
    pools = egress_pools(settings.egress, d.helo)
    return Shaper(SiteMap({DEFAULT_PROFILE: profile}), pools, clock)


def _feedback(result: SendResult) -> Feedback:
    """What an attempt's result tells the shaper about the site's capacity."""
    if result.code is None:
        return Feedback.refused(result.text)
    if result.outcome is Outcome.DELIVERED:
        return Feedback.delivered(result.code, result.text)
    if result.code == 421:
        return Feedback.throttled(result.code, result.text)
    if result.outcome is Outcome.DEFERRED:
        return Feedback.deferred(result.code, result.text)
    return Feedback.failed(result.code, result.text)


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
        shaper: Shaper | None = None,
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
        # Set once the runner listens for new broadcasts and is about to claim.
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self.shaper = shaper or unlimited_shaper(settings, self.clock)
        self.shaping = shaping_enabled(settings)
        self._inflight: dict[int, _Claim] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lanes: dict[tuple[str, tuple[Destination, ...], str], _Lane] = {}
        self._seq = itertools.count()
        self._sources: dict[str, int] = {}
        self._results: list[AttemptResult] = []
        # Final failures waiting to be told to the suppression list, after their outcome.
        self._failures: list[FailedVerdict] = []
        self._suppressions = Suppressions(queue.pool, settings.suppression, self.clock)
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
        reporter = asyncio.create_task(self._report(), name="mamoru-report")
        listener = await self._listen()
        self.ready.set()
        try:
            while not self._stopping.is_set():
                self._renew_stale_leases()
                free = self.settings.delivery.concurrency - len(self._inflight)
                want = min(free, q.claim_batch)
                claimed: list[ClaimedDelivery] = []
                if want > 0:
                    full, full_of_emergency = self._full_domains()
                    claimed = await self.queue.claim(
                        self.name, want, self.clock.now(), q.lease_seconds, full,
                        full_of_emergency,
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
            reporter.cancel()
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
            claim = _Claim(d, now)
            self._inflight[d.id] = claim
            self._spawn(self._route(claim))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _route(self, claim: _Claim) -> None:
        """Route one delivery and put it in its lane (or record why it cannot go)."""
        d = claim.delivery
        try:
            now = self.clock.now()
            if now >= d.expires_at:
                self._expire(d, now)
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
            self._dispatch(claim, route)
        except Exception as exc:  # a bug must not leave the delivery leased for minutes
            self._internal_error(d, exc)

    def _dispatch(self, claim: _Claim, route: Route) -> None:
        d = claim.delivery
        site = self.shaper.site_for(d.domain, route.mx_hosts)
        pool = self._pool_for(d.broadcast_id)
        key = (site.name, route.destinations, pool)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(site, route.destinations, pool)
        lane.domains.add(d.domain)
        self._put_back(lane, claim)
        if lane.workers < min(len(lane.pending), self._lane_connections(lane)):
            lane.workers += 1
            self._spawn(self._lane_worker(lane))

    def _pool_for(self, broadcast_id: int) -> str:
        """The egress pool of a broadcast: the pool named like its sender's domain, if one is
        configured (a municipality sending from its own addresses), else the default pool."""
        domain = self._template(broadcast_id).sender_domain
        return domain if self.shaper.has_pool(domain) else DEFAULT_POOL

    def _lane_connections(self, lane: _Lane) -> int:
        """How many connections a lane may try to hold: the shaper says how many it gets."""
        sources = self._sources.get(lane.pool)
        if sources is None:
            sources = self._sources[lane.pool] = self.shaper.active_sources(lane.pool)
        return max(1, lane.site.profile.max_connections * sources)

    def _full_domains(self) -> tuple[list[str], list[str]]:
        """Domains of full lanes, and of lanes full of emergency mail alone."""
        full: list[str] = []
        full_of_emergency: list[str] = []
        for lane in self._lanes.values():
            rate = self.shaper.site_rate(lane.site, lane.pool)
            depth = rate * _LANE_DEPTH_SECONDS + 2 * self._lane_connections(lane)
            if len(lane.pending) <= depth:
                continue
            full.extend(lane.domains)
            urgent = sum(1 for p, _, _ in lane.pending if p == Priority.EMERGENCY)
            if urgent > depth:
                full_of_emergency.extend(lane.domains)
        return full, full_of_emergency

    async def _lane_worker(self, lane: _Lane) -> None:
        """Hold one connection at a time for the lane while it has deliveries waiting."""
        try:
            while True:
                # No await between the check and the count: a delivery dispatched right after
                # sees this worker gone and starts another.
                if not lane.pending or self._stopping.is_set():
                    lane.workers -= 1
                    return
                priority = _SHAPER_PRIORITY[Priority(lane.pending[0][0])]
                grant = await self.shaper.acquire(lane.site, lane.pool, priority=priority)
                try:
                    await self._use_connection(lane, grant)
                finally:
                    self.shaper.release(grant)
        except BaseException:
            lane.workers -= 1
            raise

    async def _use_connection(self, lane: _Lane, grant: Grant) -> None:
        source = SourceAddress(grant.source.address or None, grant.source.helo or None)
        first = self._take(lane)
        if first is None:
            return
        opened = await self.transport.open(lane.destinations, source)
        if isinstance(opened, SendResult):
            self.shaper.record(grant, Feedback.refused(opened.text))
            self._finish(lane, first, opened)
            return
        session: Session = opened
        limit = min(grant.max_messages_per_connection,
                    self.settings.delivery.messages_per_connection)
        claim: _Claim | None = first
        sent = 0
        delivered = 0
        try:
            while claim is not None:
                result = await self._send(claim, session)
                sent += 1
                if result.outcome is Outcome.DELIVERED:
                    delivered += 1
                ended_session = delivered > 0 and (
                    result.code is None or result.code == 421
                ) and result.command in ("MAIL", "RCPT", "DATA")
                if ended_session and result.code is not None and is_session_limit(result.text):
                    # "Too many messages in this session": a per-connection limit, learned
                    # as such; the message rate was fine, so the shaper is not told to cut.
                    self.shaper.session_limit(grant, delivered)
                else:
                    if ended_session and result.code is None:
                        # Dropped after some mail went through (au resets): perhaps a
                        # per-connection limit; stop there next time, and slow down once.
                        self.shaper.session_limit(grant, delivered)
                    self.shaper.record(grant, _feedback(result))
                self._finish(lane, claim, result)
                if not session.usable or sent >= limit or self._stopping.is_set():
                    break
                claim = await self._next_for(lane)
                if claim is None:
                    break
                if not await self.shaper.next_message(grant):
                    self._put_back(lane, claim)
                    break
        finally:
            await session.close()

    def _take(self, lane: _Lane) -> _Claim | None:
        if not lane.pending:
            return None
        return heapq.heappop(lane.pending)[2]

    async def _next_for(self, lane: _Lane) -> _Claim | None:
        """The lane's next delivery, waiting a moment for more to arrive before giving up."""
        if not lane.pending:
            lane.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.arrived.wait(), timeout=_LINGER_SECONDS)
        return self._take(lane)

    def _put_back(self, lane: _Lane, claim: _Claim) -> None:
        """Queue the delivery in its lane (again), by priority, and wake a waiting worker."""
        priority = int(claim.delivery.priority)
        heapq.heappush(lane.pending, (priority, next(self._seq), claim))
        lane.arrived.set()

    async def _send(self, claim: _Claim, session: Session) -> SendResult:
        d = claim.delivery
        started = time.monotonic()
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
                result = await session.send(envelope)
        except TimeoutError:
            result = SendResult(
                Outcome.DEFERRED, None, None, f"attempt took longer than {budget:.0f} s",
                "DATA", None,
            )
        metrics.SEND_SECONDS.observe(time.monotonic() - started)
        return result

    def _finish(self, lane: _Lane, claim: _Claim, result: SendResult) -> None:
        """Record an attempt's result, or send the delivery round again if we were too fast."""
        d = claim.delivery
        own_fault = (
            result.outcome is Outcome.DEFERRED
            and claim.own_fault_retries < _OWN_FAULT_RETRIES
            and self.clock.now() < d.expires_at
            and (
                # A refused or reset connection is how some carriers (au) say "too fast"; with
                # shaping off nobody would slow down for it, so there it is a plain deferral.
                result.code is None and self.shaping
                or result.code is not None
                and self.shaper.is_own_fault(result.code, result.text, lane.site)
            )
        )
        if own_fault:
            claim.own_fault_retries += 1
            metrics.OWN_FAULT.inc()
            self._put_back(lane, claim)
            if lane.workers == 0:
                lane.workers += 1
                self._spawn(self._lane_worker(lane))
            return
        self._add_result(self._result_of(d, result))

    def _renew_stale_leases(self) -> None:
        """Deliveries waiting in lanes for half their lease get a new lease, so that no
        lease runs out while the mail sits here (another runner would then send it too)."""
        now_mono = time.monotonic()
        limit = now_mono - self.settings.queue.lease_seconds / 2
        stale = [claim for claim in self._inflight.values() if claim.claimed_at <= limit]
        if not stale:
            return
        for claim in stale:
            claim.claimed_at = now_mono
        self._spawn(self._extend([c.delivery.id for c in stale]))

    async def _extend(self, ids: list[int]) -> None:
        try:
            await self.queue.extend_leases(
                self.name, ids, self.clock.now(), self.settings.queue.lease_seconds
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("renewing %d leases failed: %s", len(ids), exc)

    def _expire(self, d: ClaimedDelivery, now: datetime) -> None:
        text = "not delivered within the maximum age"
        if d.last_text:
            text = f"{text}; last reply: {d.last_text}"
        self._add_result(
            AttemptResult(
                d.id, Outcome.FAILED, now, d.last_code, d.last_status, text, None,
                "expired", counts=False, category=category_for_reason("expired"),
            )
        )

    def _internal_error(self, d: ClaimedDelivery, exc: Exception) -> None:
        log.exception("delivery %d: unexpected error", d.id)
        self._add_result(
            self._temporary(d, self.clock.now(), None, None,
                            f"internal error: {type(exc).__name__}: {exc}", None,
                            "systemerror", category_for_reason("systemerror"))
        )

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
        claim = self._inflight.pop(result.delivery_id, None)
        if claim is None:
            return  # already given back to the queue; its outcome is no longer ours to write
        if result.outcome is Outcome.FAILED and result.reason and result.category:
            category = CATEGORIES.get(result.category)
            self._failures.append(
                FailedVerdict(
                    claim.delivery.recipient, result.delivery_id, result.reason,
                    result.category, bool(category and category.hard),
                )
            )
        self._wake.set()
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
            await self._tell_suppressions()
            for r in batch:
                if r.outcome is Outcome.DELIVERED:
                    self.stats.delivered += 1
                elif r.outcome is Outcome.DEFERRED:
                    self.stats.deferred += 1
                else:
                    self.stats.failed += 1
            self.stats.last_record = time.monotonic()

    async def _tell_suppressions(self) -> None:
        """Hand the final failures written so far to the suppression rules (hard failures
        suppress the address at once, soft ones count toward the threshold)."""
        if not self._failures:
            return
        batch, self._failures = self._failures, []
        try:
            await self._suppressions.record_verdicts(batch, source="smtp")
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            # The outcomes are written; only the list missed these. Keep them for next time.
            log.warning("updating the suppression list failed, will retry: %s", exc)
            self._failures = batch + self._failures

    async def _report(self) -> None:
        """Every few seconds: publish the shaper's state, and keep the gauges current."""
        while True:
            await asyncio.sleep(_REPORT_INTERVAL)
            await self._report_once()

    async def _report_once(self) -> None:
        try:
            await self._publish_state()
            if self.settings.metrics.listen:
                for state, n in (await self.queue.state_counts()).items():
                    metrics.QUEUE_DEPTH.labels(state.value).set(n)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("publishing the runner's state failed: %s", exc)

    async def _publish_state(self) -> None:
        states = self.shaper.snapshot()
        for st in states:
            metrics.SHAPING_RATE.labels(st.source or "-", st.site).set(st.rate)
            metrics.SHAPING_CONNECTIONS.labels(st.source or "-", st.site).set(
                st.connections_in_use
            )
            suspended = st.suspended_until is not None and st.suspended_until > self.clock.now()
            metrics.SHAPING_SUSPENDED.labels(st.source or "-", st.site).set(int(suspended))
        await shaping_state.publish(self.queue.pool, self.name, states, self.clock.now())

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
        if self._tasks:
            _, pending = await asyncio.wait(
                list(self._tasks), timeout=self.settings.delivery.shutdown_grace
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Claimed but without an outcome: given back below, due at once.
        unsent = list(self._inflight)
        self._inflight.clear()
        self._lanes.clear()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await self._flush()
        if unsent:
            await self.queue.release(self.name, unsent, self.clock.now())
            self.stats.released += len(unsent)
        await self._report_once()
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
