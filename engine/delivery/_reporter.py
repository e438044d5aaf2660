"""What a runner tells operators while it runs: shaping state in the database and metrics,
and one log line per suspension, block and resumption of an (egress address, site).

The throttle keeps its state in memory; every second the reporter compares the shaper's
snapshot with the previous one and logs the changes, and every few seconds it publishes the
snapshot (``engine/delivery/shaping_state.py``) for ``mamoru shaping status`` and refreshes
the gauges.
It also keeps what the shaper learned (the lines each site drew) in the database: loaded once
when the runner starts, saved with every snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from engine.delivery import shaping_state
from engine.platform import metrics
from engine.platform.clock import Clock, jst
from engine.platform.config import Settings
from engine.platform.outage import DATABASE_ERRORS
from engine.queue import Queue
from engine.throttle import Shaper, SiteState

log = logging.getLogger(__name__)

_PUBLISH_EVERY = 5
# The finished states (delivered, failed) are counted over the whole table, which grows with a
# year of history: once a minute, against the live ones every round (their partial index).
_FINISHED_EVERY = 12


class Reporter:
    def __init__(
        self, name: str, queue: Queue, shaper: Shaper, clock: Clock, settings: Settings
    ) -> None:
        self.name = name
        self.queue = queue
        self.shaper = shaper
        self.clock = clock
        self.settings = settings
        self._seen: dict[tuple[str, str], SiteState] = {}
        self._learned_loaded = False
        self._rounds = 0

    async def load_learned(self) -> None:
        """Start the shaper from what earlier runs learned; never raises for an unreachable
        database (the shaper then starts fresh)."""
        if self._learned_loaded:
            return
        try:
            learned = await shaping_state.load_learned(
                self.queue.pool, self.shaper.source_addresses()
            )
        except DATABASE_ERRORS as exc:
            log.warning("learned shaping limits could not be loaded, starting fresh: %s", exc)
            return
        self._learned_loaded = True
        self.shaper.restore(learned)
        if learned:
            log.info("shaping: starting %d (address, site) pairs under what they learned before",
                     len(learned))

    async def run(self) -> None:
        await self.load_learned()
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            states = self.shaper.snapshot()
            self.log_changes(states)
            if tick % _PUBLISH_EVERY == 0:
                await self.report_once(states)

    def log_changes(self, states: list[SiteState]) -> None:
        """One readable line per suspension of an (address, site) and per resumption."""
        now = self.clock.now()
        for st in states:
            key = (st.source, st.site)
            before = self._seen.get(key)
            self._seen[key] = st
            source = st.source or "default"
            suspended = st.suspended_until is not None and st.suspended_until > now
            was = (
                before is not None
                and before.suspended_until is not None
                and before.suspended_until > now
            )
            if st.blocks > (before.blocks if before else 0):
                metrics.BLOCKS.labels(st.source or "-", st.site).inc(
                    st.blocks - (before.blocks if before else 0)
                )
                until = jst(st.blocked_until).strftime("%H:%M:%S") if st.blocked_until else ""
                log.error(
                    "送信ブロック / BLOCKED: site %s refuses %s (block %d): %s. Its mail goes "
                    "through the other addresses of the pool or waits; nothing is failed. "
                    "Probe at %s JST",
                    st.site, source, st.blocks, st.block_reason, until,
                )
            elif before is not None and before.blocked_until and st.blocked_until is None:
                log.warning("ブロック解除 / block over: site %s accepts %s again; resuming slowly",
                            st.site, source)
            if suspended and (not was or (before and st.suspensions > before.suspensions)):
                until = jst(st.suspended_until).strftime("%H:%M:%S") if st.suspended_until else ""
                log.warning(
                    "送信一時停止 / suspended: site %s from %s until %s JST (suspension %d, "
                    "%d cuts, %d too-fast replies, %d refused connections)",
                    st.site, source, until, st.suspensions, st.cuts, st.throttled, st.refused,
                )
            elif was and not suspended:
                log.warning("送信再開 / resumed: site %s from %s at %.1f msg/s",
                            st.site, source, st.rate)

    async def report_once(self, states: list[SiteState] | None = None) -> None:
        """Publish the shaper's state and keep the gauges current; never raises for an
        unreachable database (the next round tries again)."""
        states = self.shaper.snapshot() if states is None else states
        try:
            for st in states:
                label = (st.source or "-", st.site)
                metrics.SHAPING_RATE.labels(*label).set(st.rate)
                metrics.SHAPING_CONNECTIONS.labels(*label).set(st.connections_in_use)
                suspended = (
                    st.suspended_until is not None and st.suspended_until > self.clock.now()
                )
                metrics.SHAPING_SUSPENDED.labels(*label).set(int(suspended))
                metrics.SHAPING_BLOCKED.labels(*label).set(int(st.blocked_until is not None))
            await shaping_state.publish(self.queue.pool, self.name, states, self.clock.now())
            await shaping_state.save_learned(
                self.queue.pool, self.shaper.learned(), self.clock.now()
            )
            if self.settings.metrics.listen:
                finished = self._rounds % _FINISHED_EVERY == 0
                self._rounds += 1
                counts = await (
                    self.queue.state_counts() if finished else self.queue.live_state_counts()
                )
                for state, n in counts.items():
                    metrics.QUEUE_DEPTH.labels(state.value).set(n)
                metrics.QUEUE_OLDEST_DUE.set(await self.queue.oldest_due(self.clock.now()))
        except DATABASE_ERRORS as exc:
            log.debug("publishing the runner's state failed: %s", exc)
