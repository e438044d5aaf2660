"""Helpers shared by the tests: settings for a test database, waiting on a condition."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from engine.config import Settings, load_settings


def make_settings(db_url: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: the test database, fast retries, plus the given overrides."""
    base = load_settings(None, environ={})
    settings = replace(
        base,
        database=replace(base.database, url=db_url, pool_min=1, pool_max=5),
        queue=replace(
            base.queue, poll_interval=0.05, retry_base=0.05, retry_max=0.2, flush_interval=0.02
        ),
        delivery=replace(
            base.delivery, connect_timeout=2.0, command_timeout=2.0, data_timeout=2.0,
            shutdown_grace=2.0,
        ),
        metrics=replace(base.metrics, listen=""),
        # The test servers are ours: shaping is tested on its own (tests/throttle) and with the
        # carrier simulator (tests/test_shaping.py).
        shaping={"enabled": False},
        # The test servers have no DNS for keys; tests of signing give [dkim] keys themselves.
        dkim={"allow_unsigned": True},
    )
    for name, values in sections.items():
        settings = replace(settings, **{name: replace(getattr(settings, name), **values)})
    return settings


async def wait_until(
    condition: Any, timeout: float = 10.0, interval: float = 0.02  # noqa: ASYNC109
) -> None:
    """Wait until ``condition()`` (sync or async) is true, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
