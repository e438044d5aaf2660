"""Lanes and their connection workers: deliveries waiting for a site, sent under the shaper.

Each routed delivery waits in the **lane** of its site and destinations, ordered by priority. A
lane has connection workers: each asks the shaper for a grant (a connection slot for one egress
address at that site), opens one SMTP session bound to the grant's address, and sends the lane's
deliveries one after another, taking a token from the shaper before each. The shaper hears every
reply and adapts.

A deferral that is the engine's own fault (the site said "too fast") does not count as an
attempt: the delivery goes back to the front of its lane and leaves as soon as the shaper grants
a slot again. So does a reply the shaper cannot yet tell apart from congestion or a block
(``Verdict.UNSURE``; judged again at its next try). A block of one egress address at the site
never fails or suppresses anyone: the delivery goes back to its lane for the pool's other
addresses, or, when every address of the pool is blocked there, back to the queue as deferred
until the shaper's next probe, without counting an attempt. A connection that could not be
opened is noted on the delivery (reply text and an attempt row), and the lane waits a growing
back-off before the next try, so a receiver that refuses or answers 421 at the greeting never
meets a tight loop.

Nothing is sent while outcomes cannot be written, nor under a lease not known to be valid, nor
past the delivery's maximum age: such deliveries wait, are released, or fail as ``expired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from engine.delivery._broadcast_cache import BroadcastCache
from engine.delivery._outcomes import Outcomes, feedback_of
from engine.delivery._recorder import Claim, Recorder
from engine.delivery._routing import Destination, Route
from engine.delivery._tasks import Tasks
from engine.delivery._tls_policy import TlsPolicy
from engine.delivery._transport import Envelope, SendResult, Session, SourceAddress, Transport
from engine.message.compose import MessageTemplate
from engine.message.verp import return_path
from engine.platform import metrics
from engine.platform.address import smtp_path
from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.queue import ClaimedDelivery, Outcome
from engine.queue.models import Priority
from engine.throttle import (
    DEFAULT_POOL,
    PRIORITY_BULK,
    PRIORITY_EMERGENCY,
    PRIORITY_NORMAL,
    Grant,
    Shaper,
    Site,
    Verdict,
    is_session_limit,
)

log = logging.getLogger(__name__)

# A connection worker whose lane is empty waits this long for more before closing.
_LINGER_SECONDS = 0.05
# A lane holding more waiting deliveries than it can send in this many seconds at the shaper's
# current rate (plus two per connection) is full: the claim takes no more for its domains until
# it drains, so the runner's slots are shared among all the sites with mail due.
_LANE_DEPTH_SECONDS = 1.0
# How often a delivery may go back to its lane after "too fast" replies before it is treated
# as an ordinary deferral.
_OWN_FAULT_RETRIES = 20
# Back-off between failed connection attempts of one lane: first, doubling up to the last.
_CONNECT_BACKOFF_FIRST = 0.5
_CONNECT_BACKOFF_MAX = 30.0
# How many (domain, broadcast) placements are remembered before the memory starts again.
_PLACED_MAX = 10_000

_SHAPER_PRIORITY = {
    Priority.EMERGENCY: PRIORITY_EMERGENCY,
    Priority.NORMAL: PRIORITY_NORMAL,
    Priority.BULK: PRIORITY_BULK,
}

T = TypeVar("T")


@dataclass
class Lane:
    """Deliveries waiting for a connection to one site's destinations, most urgent first."""

    site: Site
    destinations: tuple[Destination, ...]
    pool: str = DEFAULT_POOL
    domains: set[str] = field(default_factory=set)
    pending: list[tuple[int, int, Claim]] = field(default_factory=list)
    workers: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Failed connection attempts in a row, and when the next may be made (monotonic).
    connect_failures: int = 0
    connect_after: float = 0.0
    # The site, when delivery.tls_required names it: no plain text for this lane.
    tls_site: str | None = None


class Lanes:
    def __init__(
        self,
        settings: Settings,
        shaper: Shaper,
        transport: Transport,
        recorder: Recorder,
        outcomes: Outcomes,
        broadcasts: BroadcastCache,
        verp_secret: bytes,
        clock: Clock,
        tasks: Tasks,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.shaper = shaper
        self.transport = transport
        self.recorder = recorder
        self.outcomes = outcomes
        self.broadcasts = broadcasts
        self._verp_secret = verp_secret
        self.clock = clock
        self._tasks = tasks
        self._stopping = stopping
        self._lanes: dict[tuple[str, tuple[Destination, ...], str, str | None], Lane] = {}
        # Which sites only get TLS: the same site grouping as the shaper's profiles, whether
        # or not shaping is on (the configuration has checked the entries).
        self._tls = TlsPolicy.from_settings(settings.delivery.tls_required, settings.shaping)
        self._seq = itertools.count()
        self._sources: dict[str, int] = {}
        # (domain, broadcast) -> the route it was placed by and its lane (see dispatch).
        self._placed: dict[tuple[str, int], tuple[Route, Lane]] = {}

    def dispatch(self, claim: Claim, route: Route) -> None:
        """Put a routed delivery in its lane and make sure a worker serves the lane."""
        d = claim.delivery
        # The lane of a domain's deliveries of one broadcast, found once per route: the
        # route's site, the broadcast's pool and the TLS policy decide it, and none of them
        # changes while the router hands out the same route.
        placed = self._placed.get((d.domain, d.broadcast_id))
        if placed is not None and placed[0] is route:
            lane = placed[1]
        else:
            lane = self._lane_for(d, route)
            if len(self._placed) >= _PLACED_MAX:
                self._placed.clear()
            self._placed[(d.domain, d.broadcast_id)] = (route, lane)
        self._put_back(lane, claim)
        if lane.workers < min(len(lane.pending), self._lane_connections(lane)):
            lane.workers += 1
            self._tasks.spawn(self._lane_worker(lane))

    def _lane_for(self, d: ClaimedDelivery, route: Route) -> Lane:
        site = self.shaper.site_for(d.domain, route.mx_hosts)
        pool = self._pool_for(d.broadcast_id)
        tls_site = self._tls.site_requiring(d.domain, route.mx_hosts)
        key = (site.name, route.destinations, pool, tls_site)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(site, route.destinations, pool, tls_site=tls_site)
        lane.domains.add(d.domain)
        return lane

    def clear(self) -> None:
        self._lanes.clear()
        self._placed.clear()

    def full_domains(self) -> tuple[list[str], list[str]]:
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

    def expire_overdue(self) -> int:
        """Fail every waiting delivery past its maximum age, whatever the site does; returns
        how many."""
        now = self.clock.now()
        expired = 0
        for lane in self._lanes.values():
            keep = []
            for entry in lane.pending:
                claim = entry[2]
                if claim.delivery.id not in self.recorder.held:
                    continue
                if now >= claim.delivery.expires_at:
                    self.outcomes.expired(claim.delivery, now, claim.last_note)
                    expired += 1
                else:
                    keep.append(entry)
            if len(keep) != len(lane.pending):
                heapq.heapify(keep)
                lane.pending = keep
        return expired

    def withdraw_broadcasts(self, ids: set[int]) -> list[int]:
        """Take every waiting delivery of the broadcasts ``ids`` out of the lanes and out of
        the recorder's hands (the operator cancelled them); returns their delivery ids, for
        the runner to give back. Mails already on the wire finish."""
        withdrawn: list[int] = []
        for lane in self._lanes.values():
            keep = []
            for entry in lane.pending:
                d = entry[2].delivery
                if d.broadcast_id in ids:
                    if d.id in self.recorder.held:
                        withdrawn.append(d.id)
                else:
                    keep.append(entry)
            if len(keep) != len(lane.pending):
                heapq.heapify(keep)
                lane.pending = keep
        self.recorder.drop(set(withdrawn))
        return withdrawn

    # --- connection workers -------------------------------------------------------------

    def _answered(
        self, lane: Lane, grant: Grant, claim: Claim, result: SendResult, accepted: int
    ) -> None:
        """What the site answered for ``claim``, on a session that took ``accepted``
        transactions before it: the shaper hears it, then the delivery is settled."""
        ended_session = accepted > 0 and (
            result.code is None or result.code == 421
        ) and result.command in ("MAIL", "RCPT", "DATA")
        if ended_session and self.shaper.session_ended(
            grant, accepted, says_so=result.code is not None and is_session_limit(result.text)
        ):
            # The site ends sessions after this many messages, whatever its words: a
            # per-connection limit, learned as such; the rate was fine, so no cut.
            verdict = Verdict.CONGESTION
        else:
            verdict = self.shaper.record(grant, feedback_of(result, claim.delivery.recipient))
        self._finish(lane, claim, result, verdict)

    def _pool_for(self, broadcast_id: int) -> str:
        """The egress pool of a broadcast: the pool named like its sender's domain, if one is
        configured (a municipality sending from its own addresses), else the default pool."""
        domain = self.broadcasts.template(broadcast_id).sender_domain
        return domain if self.shaper.has_pool(domain) else DEFAULT_POOL

    def _lane_connections(self, lane: Lane) -> int:
        """How many connections a lane may try to hold: the shaper says how many it gets."""
        sources = self._sources.get(lane.pool)
        if sources is None:
            sources = self._sources[lane.pool] = self.shaper.active_sources(lane.pool)
        return max(1, lane.site.profile.max_connections * sources)

    async def _lane_worker(self, lane: Lane) -> None:
        """Hold one connection at a time for the lane while it has deliveries waiting. Waiting
        (for outcomes to be writable, a back-off, a grant) ends at once on shutdown: only
        mails on the wire are given the shutdown grace."""
        try:
            while True:
                # No await between the check and the count: a delivery dispatched right after
                # sees this worker gone and starts another.
                if not lane.pending or self._stopping.is_set():
                    lane.workers -= 1
                    return
                if not self.recorder.writable.is_set():
                    await self._unless_stopping(self.recorder.writable.wait())
                    continue
                wait = lane.connect_after - time.monotonic()
                if wait > 0:
                    await self._unless_stopping(asyncio.sleep(min(wait, 1.0)))
                    continue
                priority = _SHAPER_PRIORITY[Priority(lane.pending[0][0])]
                grant = await self._unless_stopping(
                    self.shaper.acquire(lane.site, lane.pool, priority=priority)
                )
                if grant is None:
                    continue
                try:
                    await self._use_connection(lane, grant)
                finally:
                    self.shaper.release(grant)
        except BaseException:
            lane.workers -= 1
            raise

    async def _unless_stopping(self, waiting: Coroutine[Any, Any, T]) -> T | None:
        """``await waiting``, or None (``waiting`` cancelled) as soon as shutdown begins."""
        if self._stopping.is_set():
            waiting.close()
            return None
        task = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            stop.cancel()
            raise
        stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def _use_connection(self, lane: Lane, grant: Grant) -> None:
        source = SourceAddress(grant.source.address or None, grant.source.helo or None)
        first = self._take(lane)
        if first is None:
            return
        opened = await self.transport.open(lane.destinations, source, tls_site=lane.tls_site)
        if isinstance(opened, SendResult) and opened.command == "STARTTLS":
            self._tls_unavailable(lane, first, opened)
            return
        if isinstance(opened, SendResult):
            verdict = self.shaper.record(grant, feedback_of(opened))
            _back_off(lane)
            self._finish(lane, first, opened, verdict)
            return
        lane.connect_failures = 0
        session: Session = opened
        limit = min(grant.max_messages_per_connection,
                    self.settings.delivery.messages_per_connection)
        claim: Claim | None = first
        sent = 0
        accepted = 0  # transactions whose MAIL the site took: what a per-session limit counts
        try:
            while claim is not None:
                result = await self._send(claim, session)
                if result.local:
                    # Not sent: the mail's own outcome at once. The site said nothing, so the
                    # shaper, the lane's back-off and the session's count hear nothing.
                    self.outcomes.sent(claim.delivery, result, self.clock.now())
                else:
                    sent += 1
                    self._answered(lane, grant, claim, result, accepted)
                    if result.outcome is Outcome.DELIVERED or result.command in ("RCPT", "DATA"):
                        accepted += 1
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

    def _take(self, lane: Lane) -> Claim | None:
        """The lane's most urgent delivery that may be sent now. Deliveries no longer ours are
        dropped, expired ones fail; while outcomes cannot be written, or when the lease is not
        known to be valid, nothing is taken (the lease is renewed by the runner)."""
        while lane.pending:
            if not self.recorder.writable.is_set():
                return None
            claim = lane.pending[0][2]
            d = claim.delivery
            if d.id not in self.recorder.held:
                heapq.heappop(lane.pending)
                continue
            if not self.recorder.lease_valid(claim):
                return None
            heapq.heappop(lane.pending)
            now = self.clock.now()
            if now >= d.expires_at:
                self.outcomes.expired(d, now, claim.last_note)
                continue
            return claim
        return None

    async def _next_for(self, lane: Lane) -> Claim | None:
        """The lane's next delivery, waiting a moment for more to arrive before giving up."""
        if not lane.pending:
            lane.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.arrived.wait(), timeout=_LINGER_SECONDS)
        return self._take(lane)

    def _put_back(self, lane: Lane, claim: Claim) -> None:
        """Queue the delivery in its lane (again), by priority, and wake a waiting worker."""
        priority = int(claim.delivery.priority)
        heapq.heappush(lane.pending, (priority, next(self._seq), claim))
        lane.arrived.set()

    def _blocked(self, lane: Lane, claim: Claim, result: SendResult, now: datetime) -> None:
        """The site blocked the address this delivery went from: not the recipient's fault.
        Another address of the pool takes it; when none may, it and the lane's waiting mail
        go back to the queue until the next probe, so other runners' addresses can carry them.
        No attempt is counted, nobody is failed or suppressed."""
        metrics.BLOCKED_DELIVERIES.labels(lane.site.name).inc()
        if self.shaper.site_open(lane.site, lane.pool):
            # Not an attempt that counts, but the operator sees the block on the delivery.
            self.outcomes.noted(claim.delivery, result, now)
            self._put_back(lane, claim)
            if lane.workers == 0:
                lane.workers += 1
                self._tasks.spawn(self._lane_worker(lane))
            return
        until = self.shaper.block_retry_at(lane.site, lane.pool)
        # The block's reply answered this delivery; the lane's others get no reply of theirs.
        self.outcomes.held_for_block(claim.delivery, result, now, until)
        self._settle(lane, now, lambda d: self.outcomes.held_for_block(d, None, now, until))

    def _tls_unavailable(self, lane: Lane, claim: Claim, result: SendResult) -> None:
        """TLS is required and no server of the lane gave it: the lane's waiting mail is
        deferred with the reason (an attempt each), none goes in plain text. Not a sign of
        congestion, so the shaper is not told; the lane backs off like after a refusal."""
        _back_off(lane)
        now = self.clock.now()
        self.outcomes.tls_unavailable(claim.delivery, result, now)
        self._settle(lane, now, lambda d: self.outcomes.tls_unavailable(d, result, now))

    def _settle(
        self, lane: Lane, now: datetime, outcome_of: Callable[[ClaimedDelivery], None]
    ) -> None:
        """Hand every delivery waiting in the lane that this runner still holds and that has
        not expired to the outcome stage with ``outcome_of`` (expired ones are left to the
        lane)."""
        keep = []
        for entry in lane.pending:
            d = entry[2].delivery
            if d.id in self.recorder.held and now < d.expires_at:
                outcome_of(d)
            else:
                keep.append(entry)
        heapq.heapify(keep)
        lane.pending = keep

    async def _send(self, claim: Claim, session: Session) -> SendResult:
        d = claim.delivery
        started = time.monotonic()
        template = self.broadcasts.template(d.broadcast_id)
        data, wire_ready = template.render_wire(d.recipient, d.id)
        envelope = Envelope(
            sender=return_path(self._verp_secret, d.id, self._bounce_domain(template)),
            recipient=smtp_path(d.recipient),
            data=data,
            wire_ready=wire_ready,
        )
        # The lease must outlive the attempt: bound the attempt well inside it. The session
        # keeps the deadline (a pipelined one with its connection's one timer, not a timer
        # per mail) and answers a deferral that says it timed out.
        deadline = asyncio.get_running_loop().time() + self.settings.queue.lease_seconds * 0.8
        result = await session.send(envelope, deadline)
        metrics.SEND_SECONDS.observe(time.monotonic() - started)
        return result

    def _bounce_domain(self, template: MessageTemplate) -> str:
        return self.settings.message.bounce_domain or template.sender_domain

    def _finish(self, lane: Lane, claim: Claim, result: SendResult, verdict: Verdict) -> None:
        """Record an attempt's result as the shaper's verdict says: as it is, or round again
        without counting an attempt (too fast, unsure, or a block of our address)."""
        d = claim.delivery
        now = self.clock.now()
        if verdict is Verdict.BLOCK and now < d.expires_at:
            self._blocked(lane, claim, result, now)
            return
        own_fault = (
            verdict in (Verdict.CONGESTION, Verdict.UNSURE)
            and claim.own_fault_retries < _OWN_FAULT_RETRIES
            and now < d.expires_at
        )
        if not own_fault:
            self.outcomes.sent(d, result, now)
            return
        claim.own_fault_retries += 1
        metrics.OWN_FAULT.inc()
        if result.command == "CONNECT" or result.code is None or verdict is Verdict.UNSURE:
            # Not an attempt that counts, but the operator sees why the mail is still waiting.
            self.outcomes.noted(d, result, now)
        self._put_back(lane, claim)
        if lane.workers == 0:
            lane.workers += 1
            self._tasks.spawn(self._lane_worker(lane))


def _back_off(lane: Lane) -> None:
    """One more failed connection: the lane waits 0.5 s, doubling up to 30 s, before the next."""
    lane.connect_failures += 1
    lane.connect_after = time.monotonic() + min(
        _CONNECT_BACKOFF_FIRST * 2 ** (lane.connect_failures - 1), _CONNECT_BACKOFF_MAX
    )
