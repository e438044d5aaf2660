"""The fan-out's streaming store (engine/queue/enqueue.py) seen from an audience: contacts are
stored from their sealed address and hash, the suppression list still applies whatever the
case of the address, each address once, and nothing is half stored."""

from __future__ import annotations

import asyncpg
import pytest
from support import opened_rows

from engine.bounce.suppression import Suppressions
from engine.delivery.context import Engine
from engine.people import Audience, Category, NightWindow, People
from engine.people.contacts import add_contact
from engine.people.directory import add_group, find_organisation
from engine.platform.clock import FakeClock
from engine.queue import NewBroadcast, Priority
from engine.twoway import send_broadcast

from .conftest import import_csv


def message(to: list[str] | None = None) -> NewBroadcast:
    return NewBroadcast(
        sender="school@example.jp", subject="お知らせ", body="本文\n",
        recipients=to or [], priority=Priority.NORMAL,
    )


async def stored(engine: Engine, broadcast_id: int) -> dict[str, asyncpg.Record]:
    return {
        r["recipient"]: r
        for r in await opened_rows(
            engine.pool, engine.queue.sealer,
            "SELECT recipient_sealed, state, reason, category, last_text, next_attempt_at "
            "FROM deliveries WHERE broadcast_id = $1", broadcast_id,
        )
    }


async def test_suppressed_contacts_fail_as_suppressed_whatever_the_case_of_their_address(
    engine: Engine, schools: People
) -> None:
    await import_csv(
        schools,
        "sho1,3,1,1,山田太郎,Taro.Papa@docomo.ne.jp,taro.mama@ezweb.ne.jp\n"
        "sho1,3,1,2,佐藤花子,hanako@softbank.ne.jp,\n",
    )
    suppressions = Suppressions(engine.pool, engine.queue.sealer)
    # The list compares without case: an entry in lower case stops the capitalised contact
    # (found only once its address is opened, during the COPY) as it stops a plain one.
    await suppressions.add("taro.papa@docomo.ne.jp", "userunknown", "unknown_user")
    await suppressions.add("hanako@softbank.ne.jp", "userunknown", "unknown_user")
    sho1 = await find_organisation(schools.pool, "sho1")
    fan = await send_broadcast(
        schools, engine.queue, message(), Audience(schools=(sho1.id,)), Category.NOTICE, 86400
    )
    rows = await stored(engine, fan.broadcast_id)
    assert {a: (r["state"], r["reason"]) for a, r in rows.items()} == {
        "Taro.Papa@docomo.ne.jp": ("failed", "suppressed"),
        "taro.mama@ezweb.ne.jp": ("queued", None),
        "hanako@softbank.ne.jp": ("failed", "suppressed"),
    }
    assert rows["Taro.Papa@docomo.ne.jp"]["category"] == "unknown_user"
    assert rows["Taro.Papa@docomo.ne.jp"]["last_text"].startswith("配信停止リストに登録済み")
    assert fan.recipients == 3 and fan.suppressed == 2
    counts = await engine.pool.fetchrow(
        "SELECT recipient_count, suppressed_count FROM broadcasts WHERE id = $1",
        fan.broadcast_id,
    )
    assert tuple(counts) == (3, 2)


async def test_contacts_differing_only_in_case_get_one_delivery(
    engine: Engine, schools: People
) -> None:
    await import_csv(
        schools,
        "sho1,3,1,1,山田太郎,Kyoudai@ezweb.ne.jp,\n"
        "sho1,3,1,2,山田次郎,kyoudai@ezweb.ne.jp,\n",
    )
    sho1 = await find_organisation(schools.pool, "sho1")
    fan = await send_broadcast(
        schools, engine.queue, message(), Audience(schools=(sho1.id,)), Category.NOTICE, 86400
    )
    rows = await stored(engine, fan.broadcast_id)
    assert [a.lower() for a in rows] == ["kyoudai@ezweb.ne.jp"]
    assert await engine.pool.fetchval(
        "SELECT recipient_count FROM broadcasts WHERE id = $1", fan.broadcast_id
    ) == 1


async def test_an_address_given_by_hand_that_a_waiting_contact_has_goes_at_once(
    engine: Engine, schools: People, clock: FakeClock
) -> None:
    night = NightWindow.parse("21:00-07:00")
    quiet = await add_group(schools, "地域の方", is_public=True, night=night)
    await add_contact(schools, "sleepy@example.jp", groups=[quiet.id], confirmed=True)
    await add_contact(schools, "night@example.jp", groups=[quiet.id], confirmed=True)
    clock.advance(12 * 3600)  # 22:00 JST
    fan = await send_broadcast(
        schools, engine.queue, message(to=["sleepy@example.jp", "extra@example.jp"]),
        Audience(groups=(quiet.id,)), Category.NOTICE, 3600,
    )
    rows = await stored(engine, fan.broadcast_id)
    assert sorted(rows) == ["extra@example.jp", "night@example.jp", "sleepy@example.jp"]
    assert fan.recipients == 3 and fan.waiting == 1
    assert rows["sleepy@example.jp"]["next_attempt_at"] == clock.now()
    assert rows["night@example.jp"]["next_attempt_at"] > clock.now()


async def test_a_failure_after_the_deliveries_are_stored_leaves_no_broadcast(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,hanako@ezweb.ne.jp\n")
    sho1 = await find_organisation(schools.pool, "sho1")
    seen: list[int] = []

    async def fails(conn: asyncpg.Connection, broadcast_id: int) -> None:
        seen.append(await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", broadcast_id
        ))
        raise RuntimeError("crash in the middle of the fan-out")

    with pytest.raises(RuntimeError):
        await send_broadcast(
            schools, engine.queue, message(), Audience(schools=(sho1.id,)), Category.NOTICE,
            86400, within=fails,
        )
    assert seen == [2]
    assert await engine.pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await engine.pool.fetchval("SELECT count(*) FROM deliveries") == 0
