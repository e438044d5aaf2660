"""Adaptive control: cuts on "slow down", recovery, suspension, and the rate's bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.throttle._aimd import AimdSettings, RateController
from engine.throttle._feedback import Feedback, Signal, signal_of
from engine.throttle.profiles import BUILTIN_PROFILES, Profile

DOCOMO = BUILTIN_PROFILES["docomo"]
YAHOO = BUILTIN_PROFILES["yahoo_jp"]


def controller(
    profile: Profile = DOCOMO, settings: AimdSettings | None = None
) -> RateController:
    return RateController(
        settings or AimdSettings(),
        ceiling=profile.max_rate,
        initial_rate=profile.initial_rate,
        max_connections=profile.max_connections,
        suspend_seconds=profile.suspend_seconds,
    )


def test_controller_starts_at_the_initial_rate() -> None:
    ctl = controller()
    assert ctl.rate == DOCOMO.initial_rate
    assert ctl.allowed_connections == DOCOMO.max_connections


def test_421_cuts_the_rate_in_half_at_once() -> None:
    ctl = controller()
    reply = Feedback.deferred(421, "4.7.0 Try again later, closing connection")
    ctl.on_signal(signal_of(reply, DOCOMO), 0.0)
    assert ctl.rate == pytest.approx(DOCOMO.initial_rate / 2)
    assert ctl.cuts == 1


def test_a_burst_of_421s_to_the_same_overload_counts_once() -> None:
    ctl = controller()
    for i in range(20):
        ctl.on_signal(Signal.SLOW_DOWN, 0.01 * i)
    assert ctl.cuts == 1
    assert ctl.rate == pytest.approx(DOCOMO.initial_rate / 2)
    assert not ctl.is_suspended(0.5)


def test_rate_climbs_back_to_the_ceiling_on_success_and_stops_there() -> None:
    ctl = controller()
    ctl.on_signal(Signal.SLOW_DOWN, 0.0)
    low = ctl.rate
    now = 0.0
    for _ in range(200):  # 10 successes a second for 20 s
        now += 0.1
        ctl.on_signal(Signal.SUCCESS, now)
    assert ctl.rate > low
    for _ in range(2000):
        now += 0.1
        ctl.on_signal(Signal.SUCCESS, now)
    assert ctl.rate == pytest.approx(DOCOMO.max_rate)


def test_successes_right_after_a_cut_do_not_undo_it() -> None:
    ctl = controller()
    ctl.on_signal(Signal.SLOW_DOWN, 10.0)
    cut = ctl.rate
    for i in range(10):
        ctl.on_signal(Signal.SUCCESS, 10.0 + 0.1 * i)
    assert ctl.rate == cut


def test_repeated_slow_downs_suspend_the_pair_until_it_expires() -> None:
    ctl = controller()
    for i in range(6):  # six distinct overloads, 1.5 s apart: within the 10 s window
        ctl.on_signal(Signal.SLOW_DOWN, 1.5 * i)
    assert ctl.is_suspended(7.5)
    assert ctl.suspended_until == pytest.approx(7.5 + DOCOMO.suspend_seconds)
    assert not ctl.is_suspended(7.5 + DOCOMO.suspend_seconds)


def test_cuts_are_hard_far_above_the_limit_and_gentle_near_it() -> None:
    ctl = controller()
    start = ctl.rate
    ctl.on_signal(Signal.SLOW_DOWN, 0.0)  # the first cut halves
    assert ctl.rate == pytest.approx(start * 0.5)
    ctl.on_signal(Signal.SLOW_DOWN, 1.0)  # quickly again: still far above, halve
    assert ctl.rate == pytest.approx(start * 0.25)
    ctl.on_signal(Signal.SLOW_DOWN, 20.0)  # a lone cut after a calm spell is gentle
    assert ctl.rate == pytest.approx(start * 0.25 * 0.7)


def test_the_normal_sawtooth_on_a_hard_limit_does_not_suspend() -> None:
    ctl = controller()
    for i in range(6):  # a cut every 12 s, as climbing back to a hard limit gives
        ctl.on_signal(Signal.SLOW_DOWN, 12.0 * i)
    assert ctl.cuts == 6
    assert not ctl.is_suspended(60.0)


def test_too_many_connections_lowers_connections_not_the_rate() -> None:
    ctl = controller()
    before = ctl.allowed_connections
    reply = Feedback.deferred(421, "4.7.0 Too many connections")
    ctl.on_signal(signal_of(reply, DOCOMO), 0.0)
    assert ctl.allowed_connections == before - 1
    assert ctl.rate == pytest.approx(DOCOMO.initial_rate)
    assert ctl.cuts == 0


def test_suspension_grows_exponentially_when_it_repeats_and_is_capped() -> None:
    ctl = controller(settings=AimdSettings(max_suspend_seconds=1000.0))
    durations = []
    now = 0.0
    for _ in range(4):
        ctl.on_signal(Signal.SUSPEND, now)
        durations.append(ctl.suspended_until - now)
        now = ctl.suspended_until + 1
    assert durations == [300.0, 600.0, 1000.0, 1000.0]


def test_suspension_backoff_is_forgiven_after_a_quiet_hour() -> None:
    ctl = controller()
    ctl.on_signal(Signal.SUSPEND, 0.0)
    ctl.on_signal(Signal.SUSPEND, 300.0 + 4000.0)
    assert ctl.suspended_until - 4300.0 == DOCOMO.suspend_seconds


def test_yahoo_suspend_pattern_suspends_at_once() -> None:
    feedback = Feedback.deferred(421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred")
    assert signal_of(feedback, YAHOO) is Signal.SUSPEND
    ctl = controller(YAHOO)
    ctl.on_signal(signal_of(Feedback.deferred(451, "VS98-IP0 deferred"), YAHOO), 0.0)
    assert ctl.is_suspended(1.0)
    assert ctl.suspended_until == YAHOO.suspend_seconds


def test_refused_connections_cut_the_allowed_connections_and_they_come_back() -> None:
    ctl = controller()
    ctl.on_signal(signal_of(Feedback.refused("Connection reset by peer"), DOCOMO), 0.0)
    assert ctl.allowed_connections == DOCOMO.max_connections // 2
    now = 2.0
    while now < 400:
        ctl.on_signal(Signal.SUCCESS, now)
        now += 0.5
    assert ctl.allowed_connections == DOCOMO.max_connections


def test_unknown_user_and_greylisting_do_not_slow_a_carrier_down() -> None:
    assert signal_of(Feedback.failed(550, "Unknown user x@docomo.ne.jp"), DOCOMO) is Signal.NEUTRAL
    assert signal_of(Feedback.deferred(450, "4.7.1 Greylisted, try again"), DOCOMO) is (
        Signal.NEUTRAL
    )
    assert signal_of(Feedback.deferred(450, "4.7.1 Message rate limit exceeded"), DOCOMO) is (
        Signal.SLOW_DOWN
    )


_SIGNALS = st.sampled_from(list(Signal))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(_SIGNALS, st.floats(min_value=0.0, max_value=30.0)), max_size=300),
    initial=st.floats(min_value=0.01, max_value=1000.0),
    ceiling=st.floats(min_value=0.05, max_value=1000.0),
)
def test_rate_stays_between_floor_and_ceiling_under_any_feedback(
    steps: list[tuple[Signal, float]], initial: float, ceiling: float
) -> None:
    ctl = RateController(
        AimdSettings(),
        ceiling=ceiling,
        initial_rate=initial,
        max_connections=4,
        suspend_seconds=60.0,
    )
    now = 0.0
    for signal, gap in steps:
        now += gap
        ctl.on_signal(signal, now)
        assert ctl.floor <= ctl.rate <= ctl.ceiling
        assert 1 <= ctl.allowed_connections <= 4
        assert ctl.suspended_until <= now + AimdSettings().max_suspend_seconds
