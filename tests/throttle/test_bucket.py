"""Token bucket: rate, burst, waiting times, and rate changes at run time."""

from __future__ import annotations

import pytest

from engine.platform.clock import FakeClock
from engine.throttle._bucket import TokenBucket


def test_bucket_grants_its_burst_then_makes_you_wait(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, rate=10.0, burst=3)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.1)


def test_bucket_refills_at_its_rate_and_never_above_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, rate=10.0, burst=2)
    bucket.try_take(2)
    clock.advance(0.1)
    assert bucket.try_take() == 0.0
    assert bucket.try_take() > 0
    clock.advance(60)
    assert bucket.tokens() == pytest.approx(2.0)


def test_bucket_limits_a_long_run_to_its_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, rate=5.0, burst=1)
    taken = 0
    for _ in range(10_000):  # 10 s in 1 ms steps
        if bucket.try_take() == 0.0:
            taken += 1
        clock.advance(0.001)
    assert 50 <= taken <= 51


def test_bucket_rate_change_takes_effect_at_once(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, rate=10.0, burst=1)
    bucket.try_take()
    bucket.set_rate(1.0)
    assert bucket.try_take() == pytest.approx(1.0)
    bucket.set_rate(100.0, burst=1)
    assert bucket.try_take() == pytest.approx(0.01)


def test_bucket_refuses_to_take_more_than_its_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, rate=1.0, burst=2)
    with pytest.raises(ValueError):
        bucket.try_take(3)
    with pytest.raises(ValueError):
        bucket.set_rate(0.0)
