"""A runner's housekeeping beside the claim loop: it says it is alive, takes back the leases
of runners that are gone, enforces ``max_age`` in the database, keeps the planner's estimate of
the live rows true, and remembers which domains take our mail (so that a resolver claiming one
does not exist is seen as the resolver's fault).
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from engine.bounce import category_for_reason
from engine.platform.clock import Clock
from engine.platform.outage import DATABASE_ERRORS
from engine.queue import liveness
from engine.throttle import BUILTIN_PROFILES

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
# A runner silent this long is gone. Only a runner that has itself reached the database
# without a break for this long judges others, so that after an outage every live runner has
# had time to announce itself again before anyone takes its leases.
STALE_SECONDS = 15.0
_SWEEP_SECONDS = 5.0
# How long an answer "this domain has (not) taken mail before" is kept in memory.
_KNOWN_TTL = 600.0

#: Domains of the carriers and mailbox providers in the built-in profiles: they exist.
WELL_KNOWN_DOMAINS = frozenset(d for p in BUILTIN_PROFILES.values() for d in p.domains)


class Upkeep:
    def __init__(self, name: str, pool: asyncpg.Pool, clock: Clock) -> None:
        self.name = name
        self.pool = pool
        self.clock = clock
        self._ok_since: float | None = None
        self._delivered_domains: set[str] = set()
        self._remembered: set[str] = set()
        self._known: dict[str, tuple[float, bool]] = {}
        self.reclaimed = 0
        self.expired = 0

    def delivered_to(self, domain: str) -> None:
        """Called for every delivered mail: the domain exists and takes mail."""
        if domain not in self._remembered:
            self._delivered_domains.add(domain)

    async def run(self) -> None:
        next_sweep = time.monotonic() + _SWEEP_SECONDS
        while True:
            if await self.beat():
                await self.refresh_estimate()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + _SWEEP_SECONDS
                await self.sweep()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def beat(self) -> bool:
        try:
            await liveness.heartbeat(self.pool, self.name, self.clock.now())
        except DATABASE_ERRORS:
            self._ok_since = None
            return False
        if self._ok_since is None:
            self._ok_since = time.monotonic()
        return True

    async def refresh_estimate(self) -> None:
        """Keep the planner's idea of the live rows true (``liveness.refresh_live_estimate``):
        checked every beat, so a new broadcast's batches are planned right within seconds."""
        try:
            if await liveness.refresh_live_estimate(self.pool):
                log.info("deliveries: statistics refreshed for the live rows")
        except DATABASE_ERRORS as exc:
            log.debug("refreshing the statistics skipped: %s", exc)

    async def sweep(self) -> None:
        """Reclaim the leases of gone runners, expire overdue rows, remember domains."""
        try:
            now = self.clock.now()
            if self._ok_since is not None and time.monotonic() - self._ok_since >= STALE_SECONDS:
                n = await liveness.reclaim_gone(self.pool, self.name, now, STALE_SECONDS)
                if n:
                    self.reclaimed += n
                    log.warning("took back %d deliveries held by runners that are gone "
                                "/ 停止したランナーの配信 %d 件を再開します", n, n)
            n = await liveness.expire_overdue(self.pool, now, category_for_reason("expired"))
            if n:
                self.expired += n
                log.warning("%d deliveries reached their maximum age unsent and failed as "
                            "expired / 期限切れ %d 件", n, n)
            if self._delivered_domains:
                fresh, self._delivered_domains = self._delivered_domains, set()
                await liveness.remember_domains(self.pool, fresh, now)
                self._remembered |= fresh
        except DATABASE_ERRORS as exc:
            log.debug("upkeep skipped: %s", exc)

    async def domain_known(self, domain: str) -> bool:
        """True when ``domain`` is a well-known provider's or has taken our mail before."""
        if domain in WELL_KNOWN_DOMAINS or domain in self._remembered:
            return True
        now = time.monotonic()
        cached = self._known.get(domain)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            known = await liveness.domain_known(self.pool, domain)
        except DATABASE_ERRORS:
            return True  # cannot tell: do not fail the guardian on a guess
        self._known[domain] = (now + _KNOWN_TTL, known)
        return known

    async def sign_off(self) -> None:
        try:
            await liveness.sign_off(self.pool, self.name)
        except DATABASE_ERRORS as exc:
            log.debug("signing off failed: %s", exc)
