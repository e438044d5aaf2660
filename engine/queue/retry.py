"""When to try a temporarily failed delivery again: exponential backoff with jitter, capped."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def next_attempt(
    now: datetime,
    attempts: int,
    base: float,
    cap: float,
    expires_at: datetime,
    rng: random.Random | None = None,
) -> datetime | None:
    """The time of the next try after ``attempts`` tries, or None when the delivery expired.

    The delay is ``base * 2**(attempts-1)`` capped at ``cap``, then scaled by a random factor in
    [0.75, 1.0] so that thousands of deliveries deferred by one carrier hiccup do not all come
    back in the same second. A last try is made at ``expires_at`` rather than never.
    """
    if now >= expires_at:
        return None
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    delay *= (rng or random).uniform(0.75, 1.0)
    return min(now + timedelta(seconds=delay), expires_at)
