"""What a runner tells operators while it runs: shaping state in the database and metrics,
and one log line per suspension and resumption of an (egress address, site).

The throttle keeps its state in memory; every second the reporter compares the shaper's
snapshot with the previous one and logs the changes, and every few seconds it publishes the
snapshot (``engine/shaping_state``) for ``mamoru shaping status`` and refreshes the gauges.
"""

from __future__ import annotations

import asyncio
import logging

from engine import metrics, shaping_state
from engine.clock import Clock, jst
from engine.config import Settings
from engine.outage import DATABASE_ERRORS
from engine.queue import Queue
from engine.throttle import Shaper, SiteState

log = logging.getLogger(__name__)

_PUBLISH_EVERY = 5


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

    async def run(self) -> None:
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
            await shaping_state.publish(self.queue.pool, self.name, states, self.clock.now())
            if self.settings.metrics.listen:
                for state, n in (await self.queue.state_counts()).items():
                    metrics.QUEUE_DEPTH.labels(state.value).set(n)
        except DATABASE_ERRORS as exc:
            log.debug("publishing the runner's state failed: %s", exc)
