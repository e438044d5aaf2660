"""Blocks and congestion are read from what replies do: per address, never a recipient's fault."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from engine.platform.clock import FakeClock
from engine.throttle import (
    EgressPool,
    Feedback,
    Learned,
    Outcome,
    Shaper,
    SiteMap,
    Source,
    Verdict,
    load_profiles,
)
from engine.throttle._congestion import Kind, SiteReplies
from engine.throttle._replies import about_recipient

Sleep = Callable[[float], Awaitable[None]]
A = Source("127.0.0.2", "a.mamoru.example.jp")
B = Source("127.0.0.3", "b.mamoru.example.jp")


def make_shaper(clock: FakeClock, sleep: Sleep, sources: tuple[Source, ...] = (A, B)) -> Shaper:
    return Shaper(
        SiteMap(load_profiles({})), {"default": EgressPool("default", sources)}, clock,
        sleep=sleep,
    )


def reply(code: int, text: str, rcpt: str, stage: str = "RCPT", status: str | None = None
          ) -> Feedback:
    outcome = Outcome.FAILED if code >= 500 else Outcome.DEFERRED
    return Feedback(outcome, code, text, status, stage, rcpt)


def state(shaper: Shaper, source: Source, site: str = "docomo") -> object:
    return next(s for s in shaper.snapshot() if s.source == source.address and s.site == site)


async def grant_from(shaper: Shaper, site_name: str, source: Source) -> object:
    site = shaper.site_for(site_name, [])
    for _ in range(20):
        grant = await asyncio.wait_for(shaper.acquire(site), 5)
        if grant.source is source:
            return grant
        shaper.release(grant)
    raise AssertionError(f"no grant from {source.address}")


async def test_a_block_reply_suspends_only_that_address_at_that_site(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep)
    docomo = shaper.site_for("docomo.ne.jp", [])
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    verdict = shaper.record(
        grant, reply(554, "Service unavailable; client host blocked", "", "MAIL", "5.7.1")
    )
    shaper.release(grant)
    assert verdict is Verdict.BLOCK  # the runner requeues it: not the recipient's failure
    blocked = state(shaper, A)
    assert blocked.blocks == 1 and blocked.blocked_until is not None  # type: ignore[attr-defined]
    assert "client host blocked" in blocked.block_reason  # type: ignore[attr-defined]
    assert shaper.site_open(docomo)  # B may still send there
    for _ in range(5):  # every docomo grant now comes from B
        g = await asyncio.wait_for(shaper.acquire(docomo), 5)
        assert g.source is B
        shaper.release(g)
    # A still sends to other sites.
    await grant_from(shaper, "ezweb.ne.jp", A)


async def test_when_every_address_is_blocked_the_site_is_closed_until_the_probe(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    docomo = shaper.site_for("docomo.ne.jp", [])
    grant = await asyncio.wait_for(shaper.acquire(docomo), 5)
    assert shaper.record(grant, reply(554, "No SMTP service here", "", "CONNECT")) is (
        Verdict.BLOCK
    )
    shaper.release(grant)
    assert not shaper.site_open(docomo)
    assert (shaper.block_retry_at(docomo) - clock.now()).total_seconds() == 60.0


async def test_the_probe_after_a_block_resumes_sending_slowly(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    docomo = shaper.site_for("docomo.ne.jp", [])
    grant = await asyncio.wait_for(shaper.acquire(docomo), 5)
    shaper.record(grant, reply(554, "Blocked", "", "MAIL", "5.7.1"))
    shaper.release(grant)
    before = clock.monotonic()
    probe = await asyncio.wait_for(shaper.acquire(docomo), 5)  # waits (fake time) for it
    assert clock.monotonic() - before >= 60.0
    assert probe.probe and probe.max_messages_per_connection == 1
    assert shaper.record(probe, Feedback(Outcome.DELIVERED, 250, "ok")) is Verdict.RECORD
    shaper.release(probe)
    st = state(shaper, A)
    assert st.blocked_until is None  # type: ignore[attr-defined]
    assert st.rate < 10.0  # type: ignore[attr-defined]  # slow start, not the old pace
    again = await asyncio.wait_for(shaper.acquire(docomo), 5)
    assert not again.probe and again.max_messages_per_connection > 1


async def test_a_refused_probe_blocks_longer(clock: FakeClock, fake_sleep: Sleep) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    docomo = shaper.site_for("docomo.ne.jp", [])
    grant = await asyncio.wait_for(shaper.acquire(docomo), 5)
    shaper.record(grant, reply(554, "Blocked", "", "MAIL", "5.7.1"))
    shaper.release(grant)
    probe = await asyncio.wait_for(shaper.acquire(docomo), 5)
    assert shaper.record(probe, reply(554, "No service", "", "CONNECT")) is Verdict.BLOCK
    shaper.release(probe)
    assert (shaper.block_retry_at(docomo) - clock.now()).total_seconds() == 120.0
    assert state(shaper, A).blocks == 2  # type: ignore[attr-defined]


async def test_a_burst_of_5xx_for_distinct_recipients_is_a_block(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    shaper.record(grant, Feedback(Outcome.DELIVERED, 250, "ok"))
    # A text that names no block: only the pattern shows it.
    verdicts = [
        shaper.record(grant, reply(550, "Message rejected", f"g{i}@docomo.ne.jp", status="5.7.1"))
        for i in range(3)
    ]
    assert verdicts == [Verdict.UNSURE, Verdict.UNSURE, Verdict.BLOCK]
    assert state(shaper, A).blocks == 1  # type: ignore[attr-defined]


async def test_a_single_unknown_user_is_not_a_block_nor_congestion(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    for i in range(5):  # even several unknown users in a row say nothing about the site
        verdict = shaper.record(
            grant, reply(550, "User unknown", f"nobody{i}@docomo.ne.jp", status="5.1.1")
        )
        assert verdict is Verdict.RECORD
    st = state(shaper, A)
    assert st.blocks == 0 and st.cuts == 0  # type: ignore[attr-defined]


async def test_a_4xx_storm_with_unknown_text_cuts_the_rate(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    rate = state(shaper, A).rate  # type: ignore[attr-defined]
    text = "Requested action aborted: local problem"  # no profile knows these words
    first = shaper.record(grant, reply(451, text, "g1@docomo.ne.jp", "RCPT", "4.3.0"))
    assert first is Verdict.UNSURE  # one recipient alone: could be that recipient's
    assert state(shaper, A).cuts == 0  # type: ignore[attr-defined]
    second = shaper.record(grant, reply(451, text, "g2@docomo.ne.jp", "DATA", "4.3.0"))
    assert second is Verdict.CONGESTION
    st = state(shaper, A)
    assert st.cuts == 1 and st.rate < rate  # type: ignore[attr-defined]


async def test_a_4xx_repeating_for_one_recipient_is_that_recipients(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    greylisted = reply(450, "Try later", "g1@docomo.ne.jp", "RCPT", "4.2.0")
    assert shaper.record(grant, greylisted) is Verdict.UNSURE
    for _ in range(3):  # the site takes other mail meanwhile
        clock.advance(4.0)
        shaper.record(grant, Feedback(Outcome.DELIVERED, 250, "ok"))
    clock.advance(4.0)
    assert shaper.record(grant, greylisted) is Verdict.RECORD  # a plain deferral now
    assert state(shaper, A).cuts == 0  # type: ignore[attr-defined]


async def test_learned_limits_restore_under_the_line(clock: FakeClock, fake_sleep: Sleep) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    grant = await grant_from(shaper, "docomo.ne.jp", A)
    for _ in range(30):  # slow start up to the site's line ...
        clock.advance(1.0)
        shaper.record(grant, Feedback(Outcome.DELIVERED, 250, "ok"))
    shaper.record(grant, Feedback(Outcome.DEFERRED, 421, "closing", None, "MAIL", "g@x"))
    learned = shaper.learned()
    line = learned[(A.address, "docomo")].trouble_rate
    assert line is not None and line > 10.0
    fresh = make_shaper(clock, fake_sleep, (A,))
    fresh.restore(learned)
    await grant_from(fresh, "docomo.ne.jp", A)
    st = state(fresh, A)
    assert st.trouble_rate == line  # type: ignore[attr-defined]
    assert st.rate <= line * 0.9  # type: ignore[attr-defined]
    assert Learned(1.0).trouble_rate is None


def test_reply_readings() -> None:
    assert about_recipient(550, "5.1.1", "User unknown")
    assert about_recipient(550, None, "Unknown user g@docomo.ne.jp")
    assert about_recipient(552, "5.2.2", "Mailbox full")
    assert not about_recipient(550, "5.7.1", "Message rejected")
    assert not about_recipient(451, "4.7.1", "Try again later")


DELIVERED = Feedback(Outcome.DELIVERED, 250, "ok", None, "DATA", "")


@pytest.mark.parametrize("text", [
    "Message rejected as spam",
    "Rejected by recipient policy: sender blocked",
    "Sending IP rejected due to poor reputation",
])
def test_one_recipients_refusal_is_never_a_block_whatever_it_says(text: str) -> None:
    replies = SiteReplies()
    t = 0.0
    for i in range(5):
        t += 0.1
        assert replies.read("a", replace(DELIVERED, recipient=f"ok{i}@docomo.ne.jp"), t) is (
            Kind.SUCCESS)
    family = reply(554, text, "family@docomo.ne.jp", "RCPT", "5.7.1")
    assert replies.read("a", family, t + 0.1) is Kind.UNSURE  # in doubt: not failed, not a block
    for i in range(5, 10):  # the site keeps taking everybody else's mail
        assert replies.read("a", replace(DELIVERED, recipient=f"ok{i}@docomo.ne.jp"), t + 1) is (
            Kind.SUCCESS)
    # Tried again after the site took others: the refusal is that recipient's own.
    assert replies.read("a", family, t + 2) is Kind.RECIPIENT


def test_refusals_of_several_recipients_with_deliveries_between_are_not_a_block() -> None:
    replies = SiteReplies()
    kinds = []
    for i in range(6):  # two families' filters among many guardians, seconds apart
        kinds.append(replies.read(
            "a", reply(554, "Message rejected as spam", f"f{i}@docomo.ne.jp", "RCPT", "5.7.1"),
            float(i)))
        replies.read("a", replace(DELIVERED, recipient=f"ok{i}@docomo.ne.jp"), i + 0.5)
    assert Kind.BLOCK not in kinds


def test_what_the_site_says_to_the_connection_is_a_block() -> None:
    replies = SiteReplies()
    assert replies.read("a", reply(554, "Transaction failed", "", "CONNECT"), 0.0) is Kind.BLOCK
    assert replies.read(
        "b", reply(554, "Service unavailable; client host blocked", "", "MAIL", "5.7.1"), 0.0
    ) is Kind.BLOCK
    # The same refusal for three recipients in a row, nothing delivered: the address, not them.
    kinds = [replies.read("c", reply(550, "Access denied", f"g{i}@docomo.ne.jp", "RCPT",
                                     "5.7.1"), 0.1 * i) for i in range(3)]
    assert kinds == [Kind.UNSURE, Kind.UNSURE, Kind.BLOCK]


def test_resets_in_a_row_with_nothing_delivered_are_a_block() -> None:
    replies = SiteReplies()
    kinds = [replies.read("a", Feedback(Outcome.REFUSED, stage="CONNECT"), float(i))
             for i in range(6)]
    assert kinds[:5] == [Kind.CONNECTION] * 5 and kinds[5] is Kind.BLOCK
    assert replies.read("a", Feedback(Outcome.REFUSED, stage="DATA"), 7.0) is Kind.CONGESTION


async def test_sessions_ended_after_the_same_count_teach_a_cap_random_ends_do_not(
    clock: FakeClock, fake_sleep: Sleep
) -> None:
    shaper = make_shaper(clock, fake_sleep, (A,))
    docomo = shaper.site_for("docomo.ne.jp", [])

    async def end_after(count: int) -> bool:
        grant = await asyncio.wait_for(shaper.acquire(docomo), 5)
        ended = shaper.session_ended(grant, count)
        shaper.release(grant)
        return ended

    # A "too fast" that closes sessions ends them after any count: never a per-session cap.
    assert [await end_after(n) for n in (7, 3, 9, 3)] == [False] * 4
    assert state(shaper, A).session_cap is None  # type: ignore[attr-defined]
    fresh = make_shaper(clock, fake_sleep, (A,))
    shaper, docomo = fresh, fresh.site_for("docomo.ne.jp", [])
    assert [await end_after(25) for _ in range(2)] == [False, True]
    assert state(shaper, A).session_cap == 25  # type: ignore[attr-defined]
