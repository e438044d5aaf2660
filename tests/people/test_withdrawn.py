"""Leaving takes effect at once, also for mail fanned out and not sent yet."""

from __future__ import annotations

from datetime import timedelta

from engine.people import People
from engine.people.choices import leave_address
from engine.people.contacts import add_contact
from engine.queue import NewBroadcast, Queue


async def test_leaving_withdraws_the_unsent_mail_of_a_scheduled_broadcast(
    schools: People,
) -> None:
    await add_contact(schools, "leaver@docomo.ne.jp", confirmed=True)
    queue = Queue(schools.pool, schools.sealer)
    now = schools.clock.now()
    later = NewBroadcast(
        "s@city.example.jp", "明日の予定", "本文\n",
        ["leaver@docomo.ne.jp", "stays@au.com", "plain.leaver@softbank.ne.jp"],
        send_at=now + timedelta(hours=3),
    )
    bid = await queue.enqueue(later, now, 3600)
    await leave_address(schools, "leaver@docomo.ne.jp")  # a contact
    await leave_address(schools, "plain.leaver@softbank.ne.jp")  # an address given by hand
    await leave_address(schools, "plain.leaver@softbank.ne.jp")  # twice: nothing more
    rows = {r["recipient"]: r for r in await queue.deliveries_of(bid)}
    assert rows["stays@au.com"]["state"] == "queued"
    for gone in ("leaver@docomo.ne.jp", "plain.leaver@softbank.ne.jp"):
        assert (rows[gone]["state"], rows[gone]["reason"]) == ("failed", "suppressed")
        assert "配信停止の申し出" in rows[gone]["last_text"]
    claimed = await queue.claim("t", 10, now + timedelta(hours=4), 60)
    assert [c.recipient for c in claimed] == ["stays@au.com"]
