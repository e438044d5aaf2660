"""The traffic shaper: the one object the runner asks before opening a connection to a site.

How the runner uses it::

    site = shaper.site_for(domain, mx_hosts)
    async with shaper.connection(site, pool="default", priority=p) as grant:
        # bind to grant.source.address, EHLO grant.source.helo; the first message may go now
        while more messages for this site and len(sent) < grant.max_messages_per_connection:
            ... send one message with at most grant.max_recipients recipients ...
            shaper.record(grant, Feedback.delivered())      # or .deferred(code, text), ...
            if not await shaper.next_message(grant):        # token for the next message
                break                                       # close the connection

or, without the context manager, `grant = await shaper.acquire(site, ...)` and
`shaper.release(grant)` in a `finally`.

**A grant covers one connection.** `acquire` waits until some source of the pool has a free
connection slot for the site (under `max_connections` and the adaptive connection allowance),
is not suspended, has warm-up room, the site is outside its quiet windows, and the (source,
site) token bucket has a token; the grant then holds the slot and the token for its first
message. Each further message on the same connection takes a token through `next_message`,
which also says when to close the connection instead: the per-connection message limit is
reached, the pair was suspended, a quiet window began, the adaptive controller cut the
connection allowance below the connections in use, or a more urgent waiter needs the slot. When
`next_message` returns False it has already released the grant (a later `release` is harmless).
One grant per connection rather than per message because the carriers count connections, and
the slot must stay taken for as long as the connection stays open.

**Waiting.** Waiters queue per (site, pool) in priority order (lower number first, then first
come first served), so an emergency mail enqueued later is served before a survey reminder, and
one busy carrier never holds up waiters for another. Only the head of a queue tries to take a
grant; it sleeps until the earliest moment something time-bound could change (a token, the end
of a suspension or quiet window, the next Japan day for warm-up caps) or until a connection slot
is released, whichever comes first. The sleep function is injectable, so tests drive waiting
with a FakeClock and never sleep for real.

**Replies.** `record` reads each reply with the site's recent replies (`congestion.py`) and
returns a `Verdict` for the delivery: record it as it is, or send it round again without an
attempt because we were too fast (CONGESTION), because it is not yet clear whose fault it was
(UNSURE), or because the site blocked this address (BLOCK: `blocks.py`; the address stops
sending there, the pool's other addresses take over, one probe mail after a growing back-off).

**Learned limits.** `learned()` gives what each (address, site) taught the controller as plain
values and `restore()` takes them back (kept in the database): a restart obeys the sites' lines.

All state is local to the process: each egress IP belongs to one runner (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.platform.clock import Clock
from engine.platform.errors import ConfigError
from engine.throttle._aimd import AimdSettings, Learned
from engine.throttle._blocks import BlockSettings
from engine.throttle._congestion import DetectorSettings, SiteReplies, Verdict
from engine.throttle._feedback import Feedback, Outcome, Signal, signal_of
from engine.throttle._pair import Pair, SiteState
from engine.throttle._pool import (
    DEFAULT_POOL,
    EgressPool,
    JapanDay,
    Source,
    egress_pools,
    pools_from_config,
    seconds_until_next_japan_day,
)
from engine.throttle.profiles import Profile, load_profiles
from engine.throttle.sites import Site, SiteMap

SleepFunction = Callable[[float], Awaitable[None]]

#: Lower numbers are served first. The runner maps the queue's lanes onto these.
PRIORITY_EMERGENCY = 0
PRIORITY_NORMAL = 5
PRIORITY_BULK = 9

# Never wait less than this: avoids spinning on float rounding of a bucket's wait time.
_MIN_WAIT = 0.001


@dataclass(eq=False)
class Grant:
    """Permission to hold one connection from `source` to `site` and send on it."""

    source: Source
    site: Site
    pool: str
    priority: int
    max_recipients: int
    max_messages_per_connection: int
    messages: int = 1  # tokens taken on this connection, the first one by acquire
    released: bool = False
    token_at: float = 0.0  # monotonic time the latest message's token was taken
    probe: bool = False  # the one mail that tests whether a block is over
    recorded: bool = False
    ended_by_site: bool = False
    ambiguous_end: bool = False  # the site ended the session; too fast or a session limit


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    event: asyncio.Event = field(compare=False, default_factory=asyncio.Event)



class Shaper:
    """Grants connections and message tokens per (egress IP, site); learns from feedback."""

    def __init__(
        self,
        site_map: SiteMap,
        pools: Mapping[str, EgressPool],
        clock: Clock,
        *,
        settings: AimdSettings | None = None,
        sleep: SleepFunction = asyncio.sleep,
        burst_seconds: float = 0.2,
        adaptive: bool = True,
        block_settings: BlockSettings | None = None,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        if DEFAULT_POOL not in pools:
            raise ConfigError(
                f"egress.sources: no source belongs to the {DEFAULT_POOL!r} pool; "
                "give at least one source pool = \"default\" (the default when pool is omitted)"
            )
        for name, pool in pools.items():
            if not pool.sources:
                raise ConfigError(f"egress pool {name!r} has no sources")
        self.site_map = site_map
        self._pools = dict(pools)
        self._clock = clock
        self._settings = settings or AimdSettings()
        self._sleep = sleep
        self._burst_seconds = burst_seconds
        # False: fixed limits only (shaping off): replies are counted, never acted on.
        self.adaptive = adaptive
        self._pairs: dict[tuple[str, str], Pair] = {}
        self._queues: dict[tuple[str, str], list[_Waiter]] = {}
        self._seq = itertools.count()
        self._block_settings = block_settings or BlockSettings()
        self._detector_settings = detector_settings or DetectorSettings()
        self._replies: dict[str, SiteReplies] = {}
        self._restored: dict[tuple[str, str], Learned] = {}
        self._day = JapanDay(clock)

    @classmethod
    def from_config(
        cls,
        profile_tables: Mapping[str, Mapping[str, object]],
        egress_sources: Sequence[Mapping[str, object]],
        clock: Clock,
        *,
        settings: AimdSettings | None = None,
        sleep: SleepFunction = asyncio.sleep,
    ) -> Shaper:
        """Build from `[shaping.profiles.*]` tables and the `[[egress.sources]]` array."""
        site_map = SiteMap(load_profiles(profile_tables))
        return cls(
            site_map, pools_from_config(egress_sources), clock, settings=settings, sleep=sleep
        )

    @classmethod
    def from_settings(
        cls,
        shaping: Mapping[str, object],
        egress: Mapping[str, object],
        clock: Clock,
        *,
        default_helo: str,
        settings: AimdSettings | None = None,
        sleep: SleepFunction = asyncio.sleep,
    ) -> Shaper:
        """Build from the `[shaping]` and `[egress]` sections as the settings object holds them.

        Without any `[[egress.sources]]` (a development setup), the default pool has one source
        with an empty address, meaning "do not bind, let the system choose", and `default_helo`.
        """
        for key in shaping:
            if key != "profiles":
                raise ConfigError(f"shaping.{key}: unknown setting; known ones are profiles")
        profiles = shaping.get("profiles", {})
        if not isinstance(profiles, Mapping):
            raise ConfigError("shaping.profiles: expected tables such as [shaping.profiles.docomo]")
        return cls(
            SiteMap(load_profiles(profiles)), egress_pools(egress, default_helo), clock,
            settings=settings, sleep=sleep,
        )

    # --- the runner's calls ------------------------------------------------------------------

    def source_addresses(self) -> list[str]:
        """The egress addresses of all pools (an empty one: "let the system choose")."""
        return sorted({s.address for p in self._pools.values() for s in p.sources})

    def has_pool(self, name: str) -> bool:
        return name in self._pools

    def active_sources(self, pool: str = DEFAULT_POOL) -> int:
        """How many sources of the pool may send (weight above 0)."""
        return sum(1 for s in self._pool(pool).sources if s.weight > 0)

    def site_rate(self, site: Site, pool: str = DEFAULT_POOL) -> float:
        """Messages per second the pool's active sources may send to the site right now (a
        source not yet used counts at the profile's starting rate)."""
        total = 0.0
        for source in self._pool(pool).sources:
            if source.weight <= 0:
                continue
            pair = self._pairs.get((source.address, site.name))
            total += pair.controller.rate if pair is not None else site.profile.initial_rate
        return total

    def site_for(self, domain: str, mx_hosts: Sequence[str]) -> Site:
        """The site a recipient domain belongs to (cached MX roll-up, see sites.py)."""
        return self.site_map.site_for(domain, mx_hosts)

    async def acquire(
        self, site: Site, pool: str = DEFAULT_POOL, priority: int = PRIORITY_NORMAL
    ) -> Grant:
        """Wait for a connection slot and the first message's token; see the module docstring."""
        egress = self._pool(pool)
        key = (site.name, pool)
        queue = self._queues.setdefault(key, [])
        if not queue:
            result = self._try_grant(site, pool, egress, priority)
            if isinstance(result, Grant):
                return result
        waiter = _Waiter(priority, next(self._seq))
        heapq.heappush(queue, waiter)
        try:
            while True:
                delay: float | None = None
                if queue[0] is waiter:
                    result = self._try_grant(site, pool, egress, priority)
                    if isinstance(result, Grant):
                        heapq.heappop(queue)
                        self._wake_heads(site.name)
                        return result
                    delay = result
                waiter.event.clear()
                await self._wait(waiter.event, delay)
        except BaseException:
            if waiter in queue:
                queue.remove(waiter)
                heapq.heapify(queue)
                self._wake_heads(site.name)
            raise

    async def next_message(self, grant: Grant) -> bool:
        """Wait for the token of one more message on the grant's connection.

        Returns False, and releases the grant, when the connection should be closed instead.
        """
        if grant.released:
            return False
        pair = self._pair(grant.source, grant.site)
        egress = self._pools[grant.pool]
        while True:
            if (
                grant.messages >= grant.max_messages_per_connection
                # A per-session limit learned on another connection meanwhile holds here too.
                or (pair.session_cap is not None and grant.messages >= pair.session_cap)
                or pair.block.blocked
                or pair.controller.is_suspended(self._clock.monotonic())
                or pair.in_use > pair.allowed
                or self._quiet_delay(grant.site.profile) is not None
                or egress.warmup_room(grant.source, self._day.today()) == 0
            ):
                self.release(grant)
                return False
            urgent = self._more_urgent_waiter(grant)
            if urgent and pair.in_use >= pair.allowed:
                self.release(grant)  # hand the slot to the more urgent mail
                return False
            wait = pair.bucket.wait_time() if urgent else pair.bucket.try_take()
            if wait == 0.0 and not urgent:
                grant.messages += 1
                grant.token_at = self._clock.monotonic()
                self._count_sent(pair, egress, grant.source)
                return True
            # With a more urgent waiter, let it have the next token first.
            await self._sleep(max(wait, _MIN_WAIT))

    def record(self, grant: Grant, feedback: Feedback) -> Verdict:
        """Tell the shaper how the grant's latest message (or the connection attempt) went;
        returns what the runner should do with that delivery (see `Verdict`).

        Record before asking `next_message` for the next one: a "slow down" is weighed by when
        its message was sent, so replies to messages sent before a cut do not cut again.
        """
        pair = self._pair(grant.source, grant.site)
        pair.counts[feedback.outcome] += 1
        grant.recorded = True
        if not self.adaptive:
            return Verdict.RECORD
        now = self._clock.monotonic()
        hint = signal_of(feedback, grant.site.profile)
        replies = self._replies.setdefault(grant.site.name, SiteReplies(self._detector_settings))
        hinted = hint is Signal.SLOW_DOWN and feedback.outcome is not Outcome.DELIVERED
        kind = replies.read(
            grant.source.address, feedback, now, hinted=hinted, others_open=pair.in_use > 1
        )
        allowed_before = pair.allowed
        blocked_before = pair.block.blocked
        verdict = pair.take_reply(
            kind, hint, feedback, now, grant.token_at, grant.probe,
            ambiguous=grant.ambiguous_end,
        )
        if pair.allowed > allowed_before or pair.block.blocked != blocked_before:
            # More room, or a block: other addresses of the pool may take the waiting mail.
            self._wake_heads(grant.site.name)
        return verdict

    def session_ended(self, grant: Grant, messages: int, *, says_so: bool = False) -> bool:
        """The site ended the grant's session after ``messages`` messages. True when that is
        its per-connection limit: the reply says so (``says_so``), or sessions of this
        (address, site) keep ending after that same count and none ever carried more (a
        "too fast" that closes sessions ends them after any count). Then later sessions carry
        at most that many and the rate is left alone; False: treat the reply as any other."""
        grant.ended_by_site = True
        if not self.adaptive or messages < 1:
            return False
        pair = self._pair(grant.source, grant.site)
        ends = pair.session_ends
        ends[messages] += 1
        pair.longest_session = max(pair.longest_session, messages)
        repeated = (
            ends[messages] >= 2
            and pair.longest_session <= messages
            and ends[messages] * 2 >= sum(ends.values())
        )
        if not (says_so or repeated):
            grant.ambiguous_end = True
            return False
        self.session_limit(grant, messages)
        return True

    def session_limit(self, grant: Grant, messages: int) -> None:
        """The site ended the grant's session after ``messages`` messages because of their
        number: later connections of this (source, site) send at most that many."""
        if not self.adaptive:
            return
        pair = self._pair(grant.source, grant.site)
        cap = max(1, messages)
        if pair.session_cap is None or cap < pair.session_cap:
            pair.session_cap = cap
        grant.max_messages_per_connection = min(grant.max_messages_per_connection, cap)

    def release(self, grant: Grant) -> None:
        """Give the grant's connection slot back; calling it twice is harmless."""
        if grant.released:
            return
        grant.released = True
        pair = self._pair(grant.source, grant.site)
        pair.in_use -= 1
        if not grant.ended_by_site:
            # The site took every message of this session (as far as it counts them).
            pair.longest_session = max(pair.longest_session, grant.messages)
        if grant.probe and not grant.recorded:
            pair.block.probe_abandoned()
        self._wake_heads(grant.site.name)

    @contextlib.asynccontextmanager
    async def connection(
        self, site: Site, pool: str = DEFAULT_POOL, priority: int = PRIORITY_NORMAL
    ) -> AsyncIterator[Grant]:
        """`acquire` on entry, `release` on exit (also on errors and cancellation)."""
        grant = await self.acquire(site, pool, priority)
        try:
            yield grant
        finally:
            self.release(grant)

    def site_open(self, site: Site, pool: str = DEFAULT_POOL) -> bool:
        """Whether some address of the pool may still send to the site (not blocked)."""
        return any(
            s.weight > 0 and not self._pair(s, site).block.blocked
            for s in self._pool(pool).sources
        )

    def block_retry_at(self, site: Site, pool: str = DEFAULT_POOL) -> datetime:
        """When the first blocked address of the pool may probe the site again."""
        now = self._clock.monotonic()
        waits = [
            self._pair(s, site).block.seconds_to_probe(now)
            for s in self._pool(pool).sources
            if s.weight > 0
        ]
        return self._clock.now() + timedelta(seconds=min(waits, default=0.0))

    def learned(self) -> dict[tuple[str, str], Learned]:
        """What each (address, site) learned, by (address, site name), as plain values."""
        out = {}
        for key, pair in self._pairs.items():
            learned = pair.learned()
            if learned is not None:
                out[key] = learned
        return out

    def restore(self, learned: Mapping[tuple[str, str], Learned]) -> None:
        """Start each (address, site) from what an earlier run learned (see `learned`)."""
        self._restored.update(learned)
        for key, value in learned.items():
            pair = self._pairs.get(key)
            if pair is not None:
                pair.restore(value)

    def snapshot(self) -> list[SiteState]:
        """One entry per (source, site) pair seen so far, sorted by site then source."""
        now_mono = self._clock.monotonic()
        now_wall = self._clock.now()
        today = self._day.today()
        waiting: dict[str, int] = {}
        for (site_name, _pool), queue in self._queues.items():
            waiting[site_name] = waiting.get(site_name, 0) + len(queue)
        sources = {s.address: (s, p) for p in self._pools.values() for s in p.sources}
        states = []
        for (address, site_name), pair in sorted(self._pairs.items(), key=lambda i: i[0][::-1]):
            ctl = pair.controller
            source, pool = sources[address]
            limit = source.warmup.limit_on(today) if source.warmup else None
            states.append(
                SiteState(
                    source=address,
                    site=site_name,
                    profile=pair.profile.name,
                    rate=ctl.rate,
                    floor=ctl.floor,
                    ceiling=ctl.ceiling,
                    connections_in_use=pair.in_use,
                    connections_allowed=pair.allowed,
                    max_connections=pair.profile.max_connections,
                    suspended_until=(
                        now_wall + timedelta(seconds=ctl.suspended_until - now_mono)
                        if ctl.is_suspended(now_mono)
                        else None
                    ),
                    suspensions=ctl.total_suspensions,
                    cuts=ctl.cuts,
                    sent=pair.sent,
                    delivered=pair.counts[Outcome.DELIVERED],
                    deferred=pair.counts[Outcome.DEFERRED],
                    throttled=pair.counts[Outcome.THROTTLED],
                    refused=pair.counts[Outcome.REFUSED],
                    failed=pair.counts[Outcome.FAILED],
                    waiting=waiting.get(site_name, 0),
                    warmup_sent_today=pool.sent_today(source, today),
                    warmup_limit_today=limit,
                    blocked_until=(
                        now_wall + timedelta(seconds=pair.block.seconds_to_probe(now_mono))
                        if pair.block.blocked
                        else None
                    ),
                    blocked_since=(
                        now_wall - timedelta(seconds=pair.block.seconds_blocked(now_mono))
                        if pair.block.blocked
                        else None
                    ),
                    blocks=pair.block.total,
                    block_reason=pair.block.reason,
                    trouble_rate=ctl.trouble_rate,
                    session_cap=pair.session_cap,
                )
            )
        return states

    # --- internals ---------------------------------------------------------------------------

    def _pool(self, name: str) -> EgressPool:
        try:
            return self._pools[name]
        except KeyError:
            raise ConfigError(
                f"egress pool {name!r} is not configured; known pools: "
                f"{', '.join(sorted(self._pools))}"
            ) from None

    def _pair(self, source: Source, site: Site) -> Pair:
        key = (source.address, site.name)
        pair = self._pairs.get(key)
        if pair is None:
            pair = Pair(
                self._clock, site.profile, self._settings, self._burst_seconds,
                self._block_settings,
            )
            learned = self._restored.get(key)
            if learned is not None:
                pair.restore(learned)
            self._pairs[key] = pair
        return pair

    def _quiet_delay(self, profile: Profile) -> float | None:
        """Seconds until the current quiet window of the profile ends, None outside one."""
        if not profile.quiet_windows:
            return None
        now = self._clock.now()
        minute = now.minute + (now.second + now.microsecond / 1e6) / 60.0
        window = profile.quiet_window_at(minute)
        return None if window is None else window.seconds_until_end(minute)

    def _try_grant(
        self, site: Site, pool_name: str, egress: EgressPool, priority: int
    ) -> Grant | float | None:
        """A grant if one is possible now, else the seconds until one might be (None: after a
        release)."""
        quiet = self._quiet_delay(site.profile)
        if quiet is not None:
            return quiet
        now = self._clock.monotonic()
        today = self._day.today()

        def usable(source: Source) -> bool:
            pair = self._pair(source, site)
            if pair.block.blocked:
                # One probe connection once the back-off is over, nothing else.
                return pair.block.may_probe(now) and pair.in_use == 0
            return (
                not pair.controller.is_suspended(now)
                and pair.in_use < pair.allowed
                and pair.bucket.wait_time() == 0.0
            )

        source = egress.choose(site.name, today, usable)
        if source is not None:
            pair = self._pair(source, site)
            probe = pair.block.blocked
            if probe:
                pair.block.start_probe()
            pair.bucket.try_take()
            pair.in_use += 1
            self._count_sent(pair, egress, source)
            return Grant(
                source=source,
                site=site,
                pool=pool_name,
                priority=priority,
                max_recipients=site.profile.max_recipients,
                max_messages_per_connection=1 if probe else min(
                    site.profile.max_messages_per_connection,
                    pair.session_cap or site.profile.max_messages_per_connection,
                ),
                token_at=now,
                probe=probe,
            )
        delays = []
        for source in egress.sources:
            if source.weight <= 0:
                continue
            if egress.warmup_room(source, today) == 0:
                delays.append(seconds_until_next_japan_day(self._clock))
                continue
            pair = self._pair(source, site)
            if pair.block.blocked:
                if not pair.block.probing:
                    delays.append(pair.block.seconds_to_probe(now))
            elif pair.controller.is_suspended(now):
                delays.append(pair.controller.suspended_until - now)
            elif pair.in_use < pair.allowed:
                delays.append(pair.bucket.wait_time())
        return min(delays) if delays else None

    def _count_sent(self, pair: Pair, egress: EgressPool, source: Source) -> None:
        pair.sent += 1
        egress.count_sent(source, self._day.today())

    def _more_urgent_waiter(self, grant: Grant) -> bool:
        queue = self._queues.get((grant.site.name, grant.pool))
        return queue is not None and bool(queue) and queue[0].priority < grant.priority

    def _wake_heads(self, site_name: str) -> None:
        for (name, _pool), queue in self._queues.items():
            if name == site_name and queue:
                queue[0].event.set()

    async def _wait(self, event: asyncio.Event, delay: float | None) -> None:
        if delay is None:
            await event.wait()
            return
        if event.is_set():
            return
        woken = asyncio.ensure_future(event.wait())
        slept = asyncio.ensure_future(self._sleep(max(delay, _MIN_WAIT)))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()


