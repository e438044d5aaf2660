"""The shaper facade: grants, connection limits, waiting, quiet windows, suspension, priority."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta

import pytest

from engine.platform.clock import FakeClock
from engine.platform.errors import ConfigError
from engine.throttle import (
    PRIORITY_BULK,
    PRIORITY_EMERGENCY,
    PRIORITY_NORMAL,
    EgressPool,
    Feedback,
    Grant,
    Shaper,
    SiteMap,
    Source,
    Verdict,
    Warmup,
    load_profiles,
)

Sleep = Callable[[float], Awaitable[None]]
A = Source("127.0.0.2", "a.mamoru.example.jp")
B = Source("127.0.0.3", "b.mamoru.example.jp")


def make_shaper(
    clock: FakeClock,
    sleep: Sleep,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    sources: tuple[Source, ...] = (A,),
) -> Shaper:
    site_map = SiteMap(load_profiles(overrides or {}))
    return Shaper(site_map, {"default": EgressPool("default", sources)}, clock, sleep=sleep)


async def settle() -> None:
    """Let every ready task run until it blocks (a few loop turns, no real time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_grant_carries_source_and_profile_limits(clock: FakeClock, fake_sleep: Sleep) -> None:
    shaper = make_shaper(clock, fake_sleep)
    site = shaper.site_for("yahoo.co.jp", ["mx.mail.yahoo.co.jp"])
    grant = await asyncio.wait_for(shaper.acquire(site), 5)
    assert grant.source is A
    assert (grant.max_messages_per_connection, grant.max_recipients) == (20, 100)
    [state] = shaper.snapshot()
    assert (state.site, state.connections_in_use, state.sent) == ("yahoo_jp", 1, 1)


async def test_connections_per_source_and_site_are_limited(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(
        clock, fake_sleep, {"docomo": {"max_connections": 2, "initial_rate": 30}}
    )
    site = shaper.site_for("docomo.ne.jp", [])
    first = await asyncio.wait_for(shaper.acquire(site), 5)
    await asyncio.wait_for(shaper.acquire(site), 5)
    third = asyncio.ensure_future(shaper.acquire(site))
    await settle()
    assert not third.done()
    assert shaper.snapshot()[0].waiting == 1
    shaper.release(first)
    grant = await asyncio.wait_for(third, 5)
    assert grant.source is A
    assert shaper.snapshot()[0].connections_in_use == 2


async def test_acquire_waits_for_tokens_at_the_site_rate(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(
        clock, fake_sleep, {"docomo": {"max_rate": 2, "initial_rate": 2, "max_connections": 50}}
    )
    site = shaper.site_for("docomo.ne.jp", [])
    start = clock.monotonic()
    for _ in range(5):
        shaper.release(await asyncio.wait_for(shaper.acquire(site), 5))
    # burst of 1 token, then 2 per second: four waits of half a second
    assert clock.monotonic() - start == pytest.approx(2.0, abs=0.01)


async def test_next_message_takes_tokens_and_closes_at_the_per_connection_limit(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(
        clock, fake_sleep, {"softbank": {"max_messages_per_connection": 3, "initial_rate": 4}}
    )
    site = shaper.site_for("softbank.ne.jp", [])
    grant = await shaper.acquire(site)
    start = clock.monotonic()
    assert await asyncio.wait_for(shaper.next_message(grant), 5)
    assert await asyncio.wait_for(shaper.next_message(grant), 5)
    assert not await asyncio.wait_for(shaper.next_message(grant), 5)
    assert grant.released
    assert clock.monotonic() - start == pytest.approx(0.5, abs=0.01)  # 2 more tokens at 4/s
    state = shaper.snapshot()[0]
    assert (state.sent, state.connections_in_use) == (3, 0)
    shaper.release(grant)  # harmless after next_message released it
    assert shaper.snapshot()[0].connections_in_use == 0


async def test_421_cuts_the_rate_and_success_brings_it_back(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep)
    site = shaper.site_for("docomo.ne.jp", [])
    grant = await shaper.acquire(site)
    shaper.record(grant, Feedback.deferred(421, "4.7.0 Try again later, closing connection"))
    shaper.record(grant, Feedback.deferred(421, "4.7.0 Try again later, closing connection"))
    state = shaper.snapshot()[0]
    assert (state.rate, state.cuts, state.deferred) == (5.0, 1, 2)
    assert state.trouble_rate == 10.0  # the rate at which the site said "too fast"
    for _ in range(10):
        clock.advance(1.0)
        shaper.record(grant, Feedback.delivered())
    # Quickly back to just under the line the site drew, then only a creep past it ...
    assert 8.9 < shaper.snapshot()[0].rate < 9.5
    for _ in range(300):
        clock.advance(1.0)
        shaper.record(grant, Feedback.delivered())
    # ... and, once well past it without pushback, the line has moved: up to the ceiling.
    assert shaper.snapshot()[0].rate == 30.0


async def test_late_replies_to_messages_sent_before_a_cut_do_not_cut_again(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"docomo": {"max_connections": 3}})
    site = shaper.site_for("docomo.ne.jp", [])
    early = [await asyncio.wait_for(shaper.acquire(site), 5) for _ in range(3)]
    clock.advance(0.1)
    shaper.record(early[0], Feedback.deferred(421, "4.7.0 Try again later, closing connection"))
    clock.advance(3.0)  # well past the cut interval, but these messages left before the cut
    shaper.record(early[1], Feedback.deferred(421, "4.7.0 Try again later, closing connection"))
    shaper.record(early[2], Feedback.deferred(450, "4.7.1 rate limit exceeded"))
    assert shaper.snapshot()[0].cuts == 1
    assert await asyncio.wait_for(shaper.next_message(early[1]), 5)
    shaper.record(early[1], Feedback.deferred(421, "4.7.0 Try again later, closing connection"))
    assert shaper.snapshot()[0].cuts == 2  # sent after the cut and still too fast


async def test_record_says_which_replies_were_our_own_fault(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep)
    docomo = await shaper.acquire(shaper.site_for("docomo.ne.jp", []))
    yahoo = await shaper.acquire(shaper.site_for("yahoo.co.jp", []))
    too_fast = Feedback.deferred(450, "4.7.1 Message rate limit exceeded")
    assert shaper.record(docomo, Feedback.deferred(421, "4.7.0 Too many connections")) is (
        Verdict.CONGESTION
    )
    assert shaper.record(docomo, too_fast) is Verdict.CONGESTION
    assert shaper.record(yahoo, Feedback.failed(554, "5.7.1 VS98-IP0 blocked")) is (
        Verdict.CONGESTION
    )
    assert shaper.record(docomo, Feedback.failed(550, "Unknown user x@docomo.ne.jp")) is (
        Verdict.RECORD
    )


async def test_a_suspended_source_is_skipped_and_used_again_after_expiry(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, sources=(A, B))
    site = shaper.site_for("yahoo.co.jp", [])
    grant = await shaper.acquire(site)
    assert grant.source is A
    shaper.record(grant, Feedback.deferred(421, "4.7.0 [TSS04] Messages temporarily deferred"))
    suspended_at = clock.now()
    assert not await shaper.next_message(grant)  # the suspended pair closes its connection
    for _ in range(4):
        other = await asyncio.wait_for(shaper.acquire(site), 5)
        assert other.source is B
        shaper.release(other)
    [state_a] = [s for s in shaper.snapshot() if s.source == A.address]
    assert state_a.suspended_until == suspended_at + timedelta(seconds=600)
    assert state_a.suspensions == 1
    clock.advance(601)
    chosen = set()
    for _ in range(4):
        g = await asyncio.wait_for(shaper.acquire(site), 5)
        chosen.add(g.source.address)
        shaper.release(g)
    assert chosen == {A.address, B.address}


async def test_acquire_waits_out_a_suspension_of_every_source(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep)
    site = shaper.site_for("yahoo.co.jp", [])
    grant = await shaper.acquire(site)
    shaper.record(grant, Feedback.deferred(451, "VS98-IP0 deferred"))
    shaper.release(grant)
    start = clock.monotonic()
    again = await asyncio.wait_for(shaper.acquire(site), 5)
    assert again.source is A
    assert clock.monotonic() - start == pytest.approx(600.0, abs=0.01)


async def test_no_grant_inside_a_quiet_window_and_one_right_after(fake_sleep: Sleep) -> None:
    clock = FakeClock(datetime(2026, 11, 2, 9, 59, 0, tzinfo=UTC))

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    shaper = make_shaper(clock, sleep, {"docomo": {"quiet_windows": [[58, 2]]}})
    site = shaper.site_for("docomo.ne.jp", [])
    grant = await asyncio.wait_for(shaper.acquire(site), 5)
    assert clock.now() == datetime(2026, 11, 2, 10, 2, 0, tzinfo=UTC)
    assert shaper.snapshot()[0].sent == 1
    # a connection still open when the next window starts is closed at the next message
    clock.advance(56 * 60)
    assert not await shaper.next_message(grant)


async def test_waiters_are_served_by_priority_then_in_arrival_order(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"au": {"max_connections": 1}})
    site = shaper.site_for("ezweb.ne.jp", [])
    holder = await shaper.acquire(site)
    order: list[str] = []

    async def wait(label: str, priority: int) -> None:
        grant = await shaper.acquire(site, priority=priority)
        order.append(label)
        shaper.release(grant)

    tasks = []
    for label, priority in [
        ("bulk", PRIORITY_BULK),
        ("normal-1", PRIORITY_NORMAL),
        ("emergency", PRIORITY_EMERGENCY),
        ("normal-2", PRIORITY_NORMAL),
    ]:
        tasks.append(asyncio.ensure_future(wait(label, priority)))
        await settle()
    assert order == []
    shaper.release(holder)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["emergency", "normal-1", "normal-2", "bulk"]


async def test_an_open_bulk_connection_yields_its_slot_to_an_emergency_waiter(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"au": {"max_connections": 1}})
    site = shaper.site_for("ezweb.ne.jp", [])
    bulk = await shaper.acquire(site, priority=PRIORITY_BULK)
    urgent = asyncio.ensure_future(shaper.acquire(site, priority=PRIORITY_EMERGENCY))
    await settle()
    assert not await asyncio.wait_for(shaper.next_message(bulk), 5)
    grant = await asyncio.wait_for(urgent, 5)
    assert grant.priority == PRIORITY_EMERGENCY


async def test_refused_connections_shrink_the_connection_allowance(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"au": {"max_connections": 4, "initial_rate": 20}})
    site = shaper.site_for("au.com", [])
    grants: list[Grant] = [await asyncio.wait_for(shaper.acquire(site), 5) for _ in range(4)]
    # Refused while three others to the site work: the site's connection limit. One fewer
    # connection is allowed, and the message rate stays where it was.
    shaper.record(grants[0], Feedback.refused("Connection reset by peer"))
    state = shaper.snapshot()[0]
    assert (state.connections_allowed, state.rate, state.cuts) == (3, 20.0, 0)
    shaper.release(grants[0])
    for g in grants[1:3]:
        shaper.release(g)
    # Refused with nothing else open: it may be the rate; halve both.
    shaper.record(grants[3], Feedback.refused("Connection reset by peer"))
    state = shaper.snapshot()[0]
    assert (state.connections_allowed, state.rate, state.cuts) == (2, 10.0, 1)


async def test_a_session_limit_is_learned_for_later_connections(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"au": {"initial_rate": 20}})
    site = shaper.site_for("au.com", [])
    grant = await shaper.acquire(site)
    assert grant.max_messages_per_connection == 100
    shaper.session_limit(grant, 30)
    assert grant.max_messages_per_connection == 30
    shaper.release(grant)
    later = await shaper.acquire(site)
    assert later.max_messages_per_connection == 30
    assert shaper.snapshot()[0].rate == 20.0  # learning the limit cut nothing


async def test_cancelled_waiter_does_not_block_the_queue(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"au": {"max_connections": 1}})
    site = shaper.site_for("au.com", [])
    holder = await shaper.acquire(site)
    first = asyncio.ensure_future(shaper.acquire(site))
    second = asyncio.ensure_future(shaper.acquire(site))
    await settle()
    first.cancel()
    await settle()
    shaper.release(holder)
    assert (await asyncio.wait_for(second, 5)).source is A
    assert first.cancelled()


async def test_connection_context_manager_releases_on_error(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep)
    site = shaper.site_for("gmail.com", [])
    with pytest.raises(RuntimeError):
        async with shaper.connection(site) as grant:
            assert shaper.snapshot()[0].connections_in_use == 1
            raise RuntimeError("smtp went away")
    assert grant.released
    assert shaper.snapshot()[0].connections_in_use == 0


async def test_weight_zero_source_never_gets_a_grant(clock: FakeClock, fake_sleep: Sleep) -> None:
    off = Source("127.0.0.9", "off.mamoru.example.jp", weight=0)
    shaper = make_shaper(clock, fake_sleep, sources=(off, A))
    site = shaper.site_for("gmail.com", [])
    used = set()
    for _ in range(30):
        grant = await asyncio.wait_for(shaper.acquire(site), 5)
        used.add(grant.source.address)
        shaper.release(grant)
    assert used == {A.address}


async def test_unknown_pool_is_a_config_error(clock: FakeClock, fake_sleep: Sleep) -> None:
    shaper = make_shaper(clock, fake_sleep)
    with pytest.raises(ConfigError, match="'bulk' is not configured"):
        await shaper.acquire(shaper.site_for("gmail.com", []), pool="bulk")


def test_shaper_from_config_builds_profiles_and_pools(clock: FakeClock) -> None:
    shaper = Shaper.from_config(
        {"docomo": {"max_connections": 3}},
        [{"address": "127.0.0.2", "helo": "a.mamoru.example.jp", "weight": 2}],
        clock,
    )
    assert shaper.site_for("docomo.ne.jp", []).profile.max_connections == 3
    with pytest.raises(ConfigError, match="default"):
        Shaper.from_config({}, [{"address": "127.0.0.2", "helo": "a.b.jp", "pool": "x"}], clock)


async def test_shaper_from_settings_sections(clock: FakeClock, fake_sleep: Sleep) -> None:
    shaper = Shaper.from_settings(
        {"profiles": {"au": {"max_connections": 1}}}, {}, clock,
        default_helo="mamoru.example.jp", sleep=fake_sleep,
    )
    grant = await asyncio.wait_for(shaper.acquire(shaper.site_for("au.com", [])), 5)
    assert (grant.source.address, grant.source.helo) == ("", "mamoru.example.jp")
    assert grant.site.profile.max_connections == 1
    with pytest.raises(ConfigError, match=r"shaping\.profile: unknown setting"):
        Shaper.from_settings({"profile": {}}, {}, clock, default_helo="x.example.jp")
    with pytest.raises(ConfigError, match=r"egress\.sources\[0\]\.helo"):
        Shaper.from_settings({}, {"sources": [{"address": "127.0.0.2"}]}, clock, default_helo="x")


async def test_warmup_ceiling_holds_a_new_address_until_the_next_japan_day(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    new = Source("127.0.0.4", "new.mamoru.example.jp", warmup=Warmup(date(2026, 11, 2), (2, 50)))
    shaper = make_shaper(clock, fake_sleep, sources=(new,))
    site = shaper.site_for("docomo.ne.jp", [])
    grant = await asyncio.wait_for(shaper.acquire(site), 5)
    assert await asyncio.wait_for(shaper.next_message(grant), 5)
    assert not await asyncio.wait_for(shaper.next_message(grant), 5)  # 2 sent: today's ceiling
    again = await asyncio.wait_for(shaper.acquire(site), 5)
    # 10:20 UTC is 19:20 in Japan; the next Japan day starts at 15:00 UTC
    assert clock.now() >= datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert clock.now() < datetime(2026, 11, 2, 15, 0, 1, tzinfo=UTC)
    assert again.source is new
    state = shaper.snapshot()[0]
    assert (state.warmup_sent_today, state.warmup_limit_today) == (1, 50)


async def test_too_many_connections_caps_the_allowance_at_what_the_site_took(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, {"gmail": {"max_connections": 20}})
    site = shaper.site_for("gmail.com", [])
    grants = [await asyncio.wait_for(shaper.acquire(site), 5) for _ in range(11)]
    shaper.record(grants[10], Feedback.deferred(421, "4.7.0 Too many connections"))
    assert shaper.snapshot()[0].connections_allowed == 10
