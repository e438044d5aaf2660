"""Where to send a recipient domain's mail: the transport map, else MX records (cached).

The transport map (``[routing.transport]``) is checked first: an exact domain, then ``"*"``.
Otherwise MX records are looked up with dnspython and tried in preference order; a domain
without MX records falls back to its A/AAAA record (RFC 5321 §5.1). NXDOMAIN and a null MX
(RFC 7505, ``MX 0 .``) are permanent failures. Answers are cached for their TTL (bounded by
``routing.cache_max_ttl``), and concurrent lookups of the same domain share one query, so 30,000
recipients at docomo.ne.jp cost one DNS query.

DNS itself is the one seam tests may replace: ``Router`` takes any ``MxLookup``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from engine.platform.clock import Clock, SystemClock
from engine.platform.config import RoutingSettings, parse_host_port
from engine.platform.errors import NoSuchDomainError, PermanentRoutingError, RoutingError

# How long to remember that a domain does not exist or failed to resolve.
_NEGATIVE_TTL = 300.0
_TEMPORARY_FAILURE_TTL = 30.0
# Transport-map routes remembered per domain (a "*" entry matches every domain there is).
_FIXED_MAX = 10_000


@dataclass(frozen=True)
class Destination:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Route:
    domain: str
    destinations: tuple[Destination, ...]
    # The MX host names, for the throttle's MX roll-up; empty for transport-map routes.
    mx_hosts: tuple[str, ...]


@dataclass(frozen=True)
class MxAnswer:
    """MX records as (preference, host) with the answer's TTL; ``exists`` False for NXDOMAIN."""

    records: tuple[tuple[int, str], ...]
    ttl: float
    exists: bool = True
    has_address: bool = False


class MxLookup(Protocol):
    async def lookup(self, domain: str) -> MxAnswer:
        """Raise RoutingError for temporary failures (timeouts, SERVFAIL)."""
        ...


class DnsMxLookup:
    """MX lookup with dnspython's asynchronous resolver."""

    def __init__(self, timeout: float) -> None:
        import dns.asyncresolver

        self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout

    async def lookup(self, domain: str) -> MxAnswer:
        import dns.exception
        import dns.resolver

        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return MxAnswer((), _NEGATIVE_TTL, exists=False)
        except dns.resolver.NoAnswer:
            return await self._address_fallback(domain)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise RoutingError(f"DNS lookup of MX for {domain} failed: {exc}") from None
        records = tuple(
            (int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer
        )
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else _NEGATIVE_TTL
        return MxAnswer(records, ttl)

    async def _address_fallback(self, domain: str) -> MxAnswer:
        import dns.exception
        import dns.resolver

        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(domain, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise RoutingError(f"DNS lookup of {rdtype} for {domain} failed: {exc}") from None
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else _NEGATIVE_TTL
            return MxAnswer((), ttl, has_address=True)
        return MxAnswer((), _NEGATIVE_TTL, has_address=False)


class Router:
    """Resolves recipient domains to an ordered list of destinations."""

    def __init__(
        self,
        settings: RoutingSettings,
        lookup: MxLookup | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._transport = _parse_transport(settings.transport)
        self._lookup = lookup or DnsMxLookup(settings.dns_timeout)
        self._clock = clock or SystemClock()
        self._max_ttl = float(settings.cache_max_ttl)
        self._cache: dict[str, tuple[float, Route | RoutingError]] = {}
        self._fixed: dict[str, Route] = {}
        self._pending: dict[str, asyncio.Future[Route]] = {}

    def known(self, domain: str) -> Route | None:
        """The destinations for ``domain`` when they are known without waiting (the transport
        map, or a cached answer that is not an error); None: ask ``route``. Lets the runner
        place a claim's deliveries without a task per delivery."""
        found = self._without_waiting(domain.lower())
        return None if isinstance(found, RoutingError) else found

    def _without_waiting(self, domain: str) -> Route | RoutingError | None:
        """The transport map's route, or a cached answer still fresh (a route or the error
        it was); None: nothing known."""
        fixed = self._fixed.get(domain)
        if fixed is not None:
            return fixed
        target = self._transport.get(domain) or self._transport.get("*")
        if target is not None:
            # One route object per domain, as for cached MX answers: the lanes know a
            # domain's place by its route (engine/delivery/_lanes.py, dispatch).
            if len(self._fixed) >= _FIXED_MAX:
                self._fixed.clear()
            route = self._fixed[domain] = Route(domain, (target,), ())
            return route
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        return None

    async def route(self, domain: str) -> Route:
        """The destinations for ``domain``; raises (Permanent)RoutingError."""
        domain = domain.lower()
        found = self._without_waiting(domain)
        if isinstance(found, RoutingError):
            raise found
        if found is not None:
            return found
        pending = self._pending.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Route] = asyncio.get_running_loop().create_future()
        self._pending[domain] = fut
        try:
            route = await self._resolve(domain)
        except RoutingError as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters may not exist
            raise
        else:
            fut.set_result(route)
            return route
        finally:
            del self._pending[domain]

    async def _resolve(self, domain: str) -> Route:
        now = self._clock.monotonic()
        try:
            answer = await self._lookup.lookup(domain)
        except RoutingError as exc:
            self._cache[domain] = (now + _TEMPORARY_FAILURE_TTL, exc)
            raise
        ttl = min(max(answer.ttl, 1.0), self._max_ttl)
        result: Route | RoutingError
        if not answer.exists:
            result = NoSuchDomainError(f"the domain {domain} does not exist (NXDOMAIN)")
        elif answer.records and all(host in ("", ".") for _, host in answer.records):
            result = PermanentRoutingError(f"the domain {domain} accepts no mail (null MX)")
        elif answer.records:
            # Equal preferences are shuffled so load spreads over a provider's MX hosts.
            ordered = sorted(
                ((pref, random.random(), host) for pref, host in answer.records if host != "."),
            )
            hosts = tuple(host.lower() for _, _, host in ordered)
            result = Route(domain, tuple(Destination(h, 25) for h in hosts), hosts)
        elif answer.has_address:
            result = Route(domain, (Destination(domain, 25),), (domain,))
        else:
            result = PermanentRoutingError(f"the domain {domain} has no MX and no address record")
        self._cache[domain] = (now + ttl, result)
        if isinstance(result, RoutingError):
            raise result
        return result


def _parse_transport(table: Mapping[str, str]) -> dict[str, Destination]:
    out: dict[str, Destination] = {}
    for domain, target in table.items():
        host, port = parse_host_port(f"routing.transport.{domain}", target, 25)
        out[domain.lower()] = Destination(host, port)
    return out
