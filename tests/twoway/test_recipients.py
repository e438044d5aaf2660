"""Linking deliveries to contacts and accounts at fan-out: exact, idempotent, strangers left out."""

from __future__ import annotations

from engine.people import Audience, Category
from engine.queue import NewBroadcast
from engine.twoway import accounts_of_delivery, contact_of_delivery, link_deliveries, send_broadcast

from .conftest import World


async def test_linking_is_exact_and_running_it_again_adds_nothing(world: World) -> None:
    class31 = await world.class_id("sho1", 3, "1")
    fan = await send_broadcast(
        world.people, world.engine.queue,
        NewBroadcast(sender="school@example.jp", subject="件名", body="本文\n",
                     recipients=["visitor@example.jp"]),
        Audience(classes=(class31,)), Category.NOTICE, 86400,
    )
    b = fan.broadcast_id
    # The fan-out linked them in its transaction; linking again adds nothing.
    linked = await world.people.pool.fetchval(
        "SELECT count(*) FROM delivery_contacts WHERE broadcast_id = $1", b)
    assert linked == 3
    assert await link_deliveries(world.people.pool, world.people, b) == 0
    d = await world.deliveries(b)
    assert await contact_of_delivery(world.people, d["visitor@example.jp"]) is None
    assert await contact_of_delivery(world.people, d["kyoudai@ezweb.ne.jp"]) == \
        await world.contact("kyoudai@ezweb.ne.jp")
    rows = await world.people.pool.fetch(
        "SELECT delivery_id, account_id FROM delivery_accounts WHERE broadcast_id = $1", b)
    taro = await world.account(("sho1", 3, "1", 1))
    hanako = await world.account(("sho1", 3, "1", 2))
    assert sorted((r["delivery_id"], r["account_id"]) for r in rows) == sorted([
        (d["taro.papa@docomo.ne.jp"], taro), (d["kyoudai@ezweb.ne.jp"], taro),
        (d["hanako.mama@docomo.ne.jp"], hanako),
    ])


async def test_a_guardian_of_two_children_in_the_audience_answers_for_both(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    d = await world.deliveries(b)
    names = [n for _, n in await accounts_of_delivery(world.people, d["kyoudai@ezweb.ne.jp"])]
    assert sorted(names) == ["山田太郎", "山田次郎"]
