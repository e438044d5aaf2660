"""The submission rate per API key is counted in the database: two serve processes (two
SubmitRate objects on one database) share one count, and a new minute starts afresh."""

from __future__ import annotations

from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.staff.submission import SubmitRate


async def test_two_serves_share_one_count_per_key(engine: Engine) -> None:
    clock = FakeClock()
    here, there = SubmitRate(engine.pool, clock, 2), SubmitRate(engine.pool, clock, 2)
    await here.count(7)
    await there.count(7)
    assert not await here.allows(7) and not await there.allows(7)
    assert await here.allows(8)  # another key has its own count
    await there.count(7)  # one over (taken before the count): still refused, no error
    assert not await here.allows(7)
    clock.advance(61)
    assert await there.allows(7)
