"""Fixtures for the traffic-shaping tests: a fake clock and a sleep that moves it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from engine.platform.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    # 10:20 UTC: well away from the top of the hour, so quiet windows only apply when a test
    # moves the clock there.
    return FakeClock(datetime(2026, 11, 2, 10, 20, tzinfo=UTC))


@pytest.fixture
def fake_sleep(clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    """A sleep that advances the fake clock instead of waiting, then lets others run."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return sleep
