from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.queue.retry import next_attempt

NOW = datetime(2026, 9, 4, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=24)


def test_backoff_doubles_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [
        (next_attempt(NOW, n, 180, 900, LATER, rng) - NOW).total_seconds()  # type: ignore[operator]
        for n in range(1, 7)
    ]
    assert 135 <= delays[0] <= 180
    assert 270 <= delays[1] <= 360
    assert all(d <= 900 for d in delays)
    assert delays[-1] >= 675


def test_no_retry_after_expiry() -> None:
    assert next_attempt(LATER, 3, 180, 900, LATER) is None


def test_last_retry_is_at_expiry_not_after() -> None:
    soon = NOW + timedelta(seconds=10)
    assert next_attempt(NOW, 1, 180, 900, soon) == soon


@given(st.integers(min_value=1, max_value=60), st.floats(min_value=0.01, max_value=1000))
def test_next_attempt_is_always_in_the_future_and_before_expiry(attempts: int, base: float) -> None:
    when = next_attempt(NOW, attempts, base, base * 5, LATER)
    assert when is not None and NOW < when <= LATER
