"""One family's refusal is that family's: it never holds back the rest of its carrier.

Among mails to one site, one recipient's filter answers at RCPT with a 5xx that speaks of spam
or of blocking the sender. Every other guardian's mail is delivered at once, the refused one
ends with its own reply, no other delivery shows that reply, and the shaper imposes no block
(issue 20: 197 of 200 mails used to wait as "blocked" behind one such answer).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sinks import Sink
from support import make_settings

from engine.delivery.context import Engine
from engine.queue import NewBroadcast

OTHERS = 60


@pytest.mark.parametrize(("local", "reply"), [
    ("spamfilter", "554 5.7.1 Message rejected as spam"),
    ("policy", "550 5.7.1 Rejected by recipient policy: sender blocked"),
])
async def test_one_familys_refusal_leaves_every_other_guardian_delivered(
    db_url: str, local: str, reply: str
) -> None:
    family = f"{local}@docomo.ne.jp"
    recipients = [f"g{i}@docomo.ne.jp" for i in range(OTHERS // 2)] + [family] + [
        f"h{i}@docomo.ne.jp" for i in range(OTHERS // 2)]
    with Sink() as sink:
        settings = make_settings(db_url, routing={"transport": {"*": sink.address}})
        eng = await Engine.open(replace(settings, shaping={"enabled": True}))
        try:
            b = NewBroadcast(sender="kyouiku@city.example.jp", subject="不審者情報",
                             body="学校周辺で不審者が目撃されました。\n", recipients=recipients)
            bid = await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=60)
            rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}
            states = runner.shaper.snapshot()
        finally:
            await eng.close()
    refused = rows.pop(family)
    assert refused["state"] == "failed", refused
    assert f"{refused['last_code']} {refused['last_status']}" == reply[:9]
    assert {r["state"] for r in rows.values()} == {"delivered"}, [
        (k, r["state"], r["last_text"]) for k, r in rows.items() if r["state"] != "delivered"]
    # Nobody else carries that family's reply.
    assert all(r["last_code"] == 250 and "5.7.1" not in (r["last_text"] or "")
               for r in rows.values())
    assert len(sink.handler.received) == OTHERS
    assert all(s.blocks == 0 and s.blocked_until is None for s in states), states
