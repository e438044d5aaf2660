"""Read confirmation: delivery -> accounts, first click kept, per-class counts, reminders due."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from engine.people import Audience
from engine.people.contacts import leave
from engine.platform.errors import InputError
from engine.queue import NewBroadcast
from engine.twoway import (
    accounts_of_delivery,
    due_read_reminders,
    link_deliveries,
    mark_reminded,
    read_by_class,
    read_list,
    record_read,
    request_read,
)

from .conftest import World


async def test_deliveries_are_linked_to_the_audience_accounts_only(world: World) -> None:
    b = await world.send(Audience(grades=(await world.grade("sho1", 3),)))
    d = await world.deliveries(b)
    # kyoudai@ receives for 太郎 (grade 3) and 次郎 (grade 1): only 太郎 is in this audience.
    assert await accounts_of_delivery(world.people, d["kyoudai@ezweb.ne.jp"]) == [
        (await world.account(("sho1", 3, "1", 1)), "山田太郎")
    ]


async def test_the_first_click_is_kept_and_a_second_changes_nothing(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await request_read(world.people, b, timedelta(hours=2), 2)
    d = await world.deliveries(b)
    first = world.clock.now()
    assert await record_read(world.people, d["hanako.mama@docomo.ne.jp"]) == first
    world.clock.advance(600)
    assert await record_read(world.people, d["hanako.mama@docomo.ne.jp"]) == first
    n = await world.people.pool.fetchval("SELECT count(*) FROM delivery_reads")
    assert n == 1


async def test_a_read_is_refused_when_the_broadcast_did_not_ask_for_one(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    d = await world.deliveries(b)
    with pytest.raises(InputError, match="確認の依頼"):
        await record_read(world.people, d["hanako.mama@docomo.ne.jp"])
    with pytest.raises(InputError):
        await record_read(world.people, 987654321)
    assert await world.people.pool.fetchval("SELECT count(*) FROM delivery_reads") == 0


async def test_read_counts_per_class_count_a_child_read_by_any_guardian(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await request_read(world.people, b, timedelta(hours=2), 2)
    d = await world.deliveries(b)
    # 太郎's second guardian reads (for 太郎 and 次郎); 一郎's first guardian reads.
    await record_read(world.people, d["kyoudai@ezweb.ne.jp"])
    await record_read(world.people, d["ichiro@softbank.ne.jp"])
    counts = {(c.grade, c.class_name): (c.accounts, c.read) for c in await read_by_class(
        world.people, b)}
    assert counts == {(1, "1"): (1, 1), (3, "1"): (2, 1), (3, "2"): (1, 1)}
    class31 = await world.class_id("sho1", 3, "1")
    listing = await read_list(world.people, b, class31)
    assert [(a.name, a.read_at is not None) for a in listing] == [
        ("山田太郎", True), ("佐藤花子", False)
    ]


async def test_reminders_go_exactly_to_unread_deliveries_after_the_delay_up_to_the_limit(
    world: World,
) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await request_read(world.people, b, timedelta(hours=2), 2)
    d = await world.deliveries(b)
    await record_read(world.people, d["taro.papa@docomo.ne.jp"])
    await leave(world.people, "ichiro-2@i.softbank.jp")
    unread = sorted(
        d[a] for a in ("kyoudai@ezweb.ne.jp", "hanako.mama@docomo.ne.jp", "ichiro@softbank.ne.jp")
    )

    world.clock.advance(2 * 3600 - 1)
    assert await due_read_reminders(world.people, world.clock.now(), b) == []
    world.clock.advance(1)
    due = await due_read_reminders(world.people, world.clock.now(), b)
    assert [r.delivery_id for r in due] == unread and {r.sent for r in due} == {0}

    await mark_reminded(world.people.pool, "read", [r.delivery_id for r in due], world.clock.now())
    # One of them reads after the first reminder.
    await record_read(world.people, d["hanako.mama@docomo.ne.jp"])
    world.clock.advance(3600)
    assert await due_read_reminders(world.people, world.clock.now(), b) == []
    world.clock.advance(3600)
    due = await due_read_reminders(world.people, world.clock.now(), b)
    assert [r.delivery_id for r in due] == sorted(
        d[a] for a in ("kyoudai@ezweb.ne.jp", "ichiro@softbank.ne.jp"))
    assert {r.sent for r in due} == {1}

    await mark_reminded(world.people.pool, "read", [r.delivery_id for r in due], world.clock.now())
    world.clock.advance(86400)
    # The limit (2) is reached: nobody is reminded a third time.
    assert await due_read_reminders(world.people, world.clock.now()) == []


async def test_undelivered_mail_gets_no_reminder(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await request_read(world.people, b, timedelta(minutes=30), 1)
    d = await world.deliveries(b)
    await world.people.pool.execute(
        "UPDATE deliveries SET state = 'failed' WHERE id = $1", d["hanako.mama@docomo.ne.jp"]
    )
    world.clock.advance(3600)
    due = {r.recipient for r in await due_read_reminders(world.people, world.clock.now(), b)}
    assert "hanako.mama@docomo.ne.jp" not in due and len(due) == 4


async def test_a_bad_reminder_policy_is_refused(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    with pytest.raises(InputError):
        await request_read(world.people, b, timedelta(0), 2)
    with pytest.raises(InputError):
        await request_read(world.people, b, timedelta(hours=1), 11)
    with pytest.raises(InputError, match="配信"):
        await request_read(world.people, 99999, timedelta(hours=1), 1)
    assert await world.people.pool.fetchval("SELECT count(*) FROM read_requests") == 0


async def test_simultaneous_first_clicks_record_one_read(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    await request_read(world.people, b, timedelta(hours=2), 2)
    d = (await world.deliveries(b))["hanako.mama@docomo.ne.jp"]
    times = await asyncio.gather(*(record_read(world.people, d) for _ in range(8)))
    assert set(times) == {world.clock.now()}
    assert await world.people.pool.fetchval("SELECT count(*) FROM delivery_reads") == 1


async def test_a_read_request_can_share_the_fan_out_transaction(world: World) -> None:
    pool = world.people.pool
    message = NewBroadcast(sender="school@example.jp", subject="件名", body="本文\n",
                           recipients=["hanako.mama@docomo.ne.jp"])
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            b = await world.engine.queue.enqueue(message, world.clock.now(), 86400, conn=conn)
            await request_read(world.people, b, timedelta(hours=1), 1, conn=conn)
            await link_deliveries(conn, world.people, b)
            raise RuntimeError("the fan-out fails after the request")
    assert await pool.fetchval("SELECT count(*) FROM read_requests") == 0
    assert await pool.fetchval("SELECT count(*) FROM delivery_contacts") == 0
    async with pool.acquire() as conn, conn.transaction():
        b = await world.engine.queue.enqueue(message, world.clock.now(), 86400, conn=conn)
        await request_read(world.people, b, timedelta(hours=1), 1, conn=conn)
        await link_deliveries(conn, world.people, b)
    assert await pool.fetchval("SELECT broadcast_id FROM read_requests") == b
