"""After a database outage (a restart, a failover to a promoted replica) the runner claims
again as soon as outcomes can be written, not at its next 5-second poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from dbproxy import DatabaseProxy
from sinks import Sink
from support import make_settings, wait_until

from engine.delivery.context import Engine
from engine.queue import NewBroadcast


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[DatabaseProxy]:
    p = DatabaseProxy(db_url)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_claiming_resumes_at_once_when_outcomes_are_written_again(
    proxy: DatabaseProxy,
) -> None:
    with Sink() as sink:
        settings = make_settings(
            proxy.url, routing={"transport": {"*": sink.address}},
            delivery={"concurrency": 2},
        )
        engine = await Engine.open(settings)
        runner = await engine.runner()
        task = asyncio.create_task(runner.run())
        try:
            await engine.queue.enqueue(
                NewBroadcast(sender="school@example.jp", subject="臨時休校",
                             body="台風のため臨時休校とします。\n",
                             recipients=[f"g{i}@example.jp" for i in range(2000)]),
                engine.clock.now(), settings.queue.max_age,
            )
            await wait_until(lambda: runner.stats.claimed >= 10, timeout=30)
            await proxy.stop()
            # An outcome could not be written: sending and claiming stop.
            await wait_until(lambda: not runner.recorder.writable.is_set(), timeout=10)
            # The runner is now waiting for the recorder (it used to wait 5 s regardless).
            await asyncio.sleep(0.3)  # an outage of some length, not a synchronisation
            claimed = runner.stats.claimed
            await proxy.start()
            back = time.monotonic()
            await wait_until(lambda: runner.stats.claimed > claimed, timeout=10)
            resumed = time.monotonic() - back
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=30)
            await engine.close()
    # The recorder retries after 0.2, 0.4, 0.8 s...: well under the runner's 5 s poll.
    assert resumed < 2.5, f"claiming resumed {resumed:.1f} s after the database came back"
    assert sink.handler.received
