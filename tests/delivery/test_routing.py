from __future__ import annotations

import asyncio

import pytest

from engine.delivery._routing import Destination, MxAnswer, Router
from engine.platform.clock import FakeClock
from engine.platform.config import RoutingSettings
from engine.platform.errors import PermanentRoutingError, RoutingError


class FakeDns:
    """The one seam we may fake: DNS answers by domain, counting the queries."""

    def __init__(self, answers: dict[str, MxAnswer | RoutingError]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        self.gate: asyncio.Event | None = None

    async def lookup(self, domain: str) -> MxAnswer:
        self.queries.append(domain)
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers[domain]
        if isinstance(answer, RoutingError):
            raise answer
        return answer


def router(dns: FakeDns, clock: FakeClock | None = None, **kw: object) -> Router:
    return Router(RoutingSettings(**kw), lookup=dns, clock=clock or FakeClock())  # type: ignore[arg-type]


async def test_mx_hosts_are_tried_in_preference_order() -> None:
    dns = FakeDns({"example.jp": MxAnswer(((20, "mx2.example.jp"), (10, "mx1.example.jp")), 300)})
    route = await router(dns).route("example.jp")
    assert [d.host for d in route.destinations] == ["mx1.example.jp", "mx2.example.jp"]
    assert route.destinations[0].port == 25
    assert route.mx_hosts == ("mx1.example.jp", "mx2.example.jp")


async def test_domain_without_mx_falls_back_to_its_address() -> None:
    dns = FakeDns({"school.example.jp": MxAnswer((), 300, has_address=True)})
    route = await router(dns).route("school.example.jp")
    assert route.destinations == (Destination("school.example.jp", 25),)


async def test_nxdomain_is_a_permanent_failure() -> None:
    dns = FakeDns({"nowhere.example.jp": MxAnswer((), 300, exists=False)})
    with pytest.raises(PermanentRoutingError, match="does not exist"):
        await router(dns).route("nowhere.example.jp")


async def test_null_mx_is_a_permanent_failure() -> None:
    dns = FakeDns({"nomail.example.jp": MxAnswer(((0, "."),), 300)})
    with pytest.raises(PermanentRoutingError, match="null MX"):
        await router(dns).route("nomail.example.jp")


async def test_no_mx_and_no_address_is_a_permanent_failure() -> None:
    dns = FakeDns({"empty.example.jp": MxAnswer((), 300, has_address=False)})
    with pytest.raises(PermanentRoutingError):
        await router(dns).route("empty.example.jp")


async def test_temporary_dns_failure_is_not_permanent() -> None:
    dns = FakeDns({"slow.example.jp": RoutingError("timeout")})
    with pytest.raises(RoutingError) as info:
        await router(dns).route("slow.example.jp")
    assert not isinstance(info.value, PermanentRoutingError)


async def test_answers_are_cached_for_their_ttl() -> None:
    clock = FakeClock()
    dns = FakeDns({"example.jp": MxAnswer(((10, "mx.example.jp"),), 60)})
    r = router(dns, clock)
    await r.route("example.jp")
    clock.advance(59)
    await r.route("example.jp")
    assert len(dns.queries) == 1
    clock.advance(2)
    await r.route("example.jp")
    assert len(dns.queries) == 2


async def test_concurrent_lookups_of_one_domain_share_one_query() -> None:
    dns = FakeDns({"docomo.ne.jp": MxAnswer(((10, "mfsmax.docomo.ne.jp"),), 300)})
    dns.gate = asyncio.Event()
    r = router(dns)
    tasks = [asyncio.create_task(r.route("docomo.ne.jp")) for _ in range(50)]
    await asyncio.sleep(0)
    dns.gate.set()
    routes = await asyncio.gather(*tasks)
    assert len(dns.queries) == 1
    assert all(rt.destinations[0].host == "mfsmax.docomo.ne.jp" for rt in routes)


async def test_transport_map_overrides_dns_per_domain_and_for_all() -> None:
    dns = FakeDns({})
    r = router(dns, transport={"docomo.ne.jp": "127.0.0.1:2601", "*": "127.0.0.1:2525"})
    assert (await r.route("docomo.ne.jp")).destinations == (Destination("127.0.0.1", 2601),)
    assert (await r.route("gmail.com")).destinations == (Destination("127.0.0.1", 2525),)
    assert dns.queries == []


async def test_a_route_known_without_waiting_is_the_one_route_gives() -> None:
    """Router.known: the transport map or a live cached answer, else None (the runner then
    routes in a task of its own); a cached error or an expired answer is never 'known'."""
    clock = FakeClock()
    dns = FakeDns({
        "example.jp": MxAnswer(((10, "mx.example.jp"),), 60),
        "slow.example.jp": RoutingError("timeout"),
    })
    r = router(dns, clock, transport={"docomo.ne.jp": "127.0.0.1:2601"})
    assert r.known("DOCOMO.ne.jp") == await r.route("docomo.ne.jp")
    assert r.known("example.jp") is None and dns.queries == []
    route = await r.route("example.jp")
    assert r.known("Example.JP") is route
    with pytest.raises(RoutingError):
        await r.route("slow.example.jp")
    assert r.known("slow.example.jp") is None
    clock.advance(61)
    assert r.known("example.jp") is None
