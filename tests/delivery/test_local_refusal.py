"""A mail mamoru decides not to send is that mail's outcome, never news about the site.

The receiver announces SIZE; one broadcast is larger. Its mails fail at once with 5.3.4, one
attempt each, while the other broadcast's mails go out on the same connections, and the shaper
hears nothing: no refused connection, no suspension, no back-off (issue 20: an oversize mail
used to cost its carrier 20 uncounted retries and a five-minute suspension).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from sinks import Sink
from support import make_settings

from engine.delivery.context import Engine
from engine.queue import NewBroadcast

LIMIT = 4000


async def _broadcast(eng: Engine, body: str, recipients: list[str]) -> int:
    b = NewBroadcast(sender="kyouiku@city.example.jp", subject="お知らせ", body=body,
                     recipients=recipients)
    return await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)


async def test_an_oversize_mail_fails_once_and_its_site_keeps_sending(db_url: str) -> None:
    with Sink(size_limit=LIMIT) as sink:
        settings = make_settings(db_url, routing={"transport": {"*": sink.address}})
        eng = await Engine.open(replace(settings, shaping={"enabled": True}))
        try:
            big = await _broadcast(eng, "台風のため臨時休校です。\n" * 400,
                                   [f"big{i}@docomo.ne.jp" for i in range(3)])
            small = await _broadcast(eng, "台風のため臨時休校です。\n",
                                     [f"small{i}@docomo.ne.jp" for i in range(20)])
            runner = await eng.runner()
            started = time.monotonic()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
            seconds = time.monotonic() - started
            big_rows = await eng.queue.deliveries_of(big)
            small_rows = await eng.queue.deliveries_of(small)
            states = runner.shaper.snapshot()
            suppressed = await eng.pool.fetchval("SELECT count(*) FROM suppressions")
        finally:
            await eng.close()
    for row in big_rows:
        assert (row["state"], row["last_status"], row["reason"]) == (
            "failed", "5.3.4", "mesgtoobig"), row
        assert row["attempts"] == 1, row
        assert "SIZE" in row["last_text"] and "not sent" in row["last_text"]
    assert [r["state"] for r in small_rows] == ["delivered"] * 20
    # Nothing of the big mails reached the receiver; every small one did.
    assert len(sink.handler.received) == 20
    assert all(len(m.data) < LIMIT for m in sink.handler.received)
    # The site heard of no trouble, so nothing waited on it.
    assert states and all(
        (s.refused, s.suspensions, s.blocks, s.cuts) == (0, 0, 0, 0) for s in states
    ), states
    assert suppressed == 0
    assert seconds < 20
