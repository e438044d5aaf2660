"""Audience -> deliveries: exactly the right guardians, each address once, conditions, skips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import opened_rows

from engine.bounce.suppression import Suppressions
from engine.delivery.context import Engine
from engine.people import Audience, Category, NightWindow, People, SkipReason
from engine.people.contacts import add_contact, leave
from engine.people.directory import add_group, current_year, find_grade, find_organisation
from engine.platform.clock import FakeClock
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Priority
from engine.twoway import send_broadcast

from .conftest import import_csv

ROWS = (
    "sho1,3,1,1,山田太郎,taro.papa@docomo.ne.jp,kyoudai@ezweb.ne.jp\n"
    "sho1,3,1,2,佐藤花子,hanako..mama@docomo.ne.jp,\n"
    "sho1,3,2,1,鈴木一郎,ichiro@softbank.ne.jp,ichiro-2@i.softbank.jp\n"
    # 太郎's younger sibling: the same guardian address, another grade.
    "sho1,1,1,5,山田次郎,kyoudai@ezweb.ne.jp,\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp,\n"
)


def message(priority: Priority = Priority.NORMAL, to: list[str] | None = None) -> NewBroadcast:
    return NewBroadcast(
        sender="school@example.jp", subject="お知らせ", body="本文\n",
        recipients=to or [], priority=priority,
    )


async def recipients_of(engine: Engine, broadcast_id: int) -> list[str]:
    rows = await engine.queue.deliveries_of(broadcast_id)
    return sorted(r["recipient"] for r in rows)


async def grade_of(people: People, school: str, grade: int) -> int:
    org = await find_organisation(people.pool, school)
    return await find_grade(people.pool, org, grade, await current_year(people.pool, DAY))


DAY = datetime(2026, 11, 24, tzinfo=UTC)


async def test_a_grade_of_one_school_reaches_exactly_its_guardians_each_once(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    audience = Audience(grades=(await grade_of(schools, "sho1", 3),))
    fan = await send_broadcast(
        schools, engine.queue, message(), audience, Category.SCHOOL_EVENT, 86400
    )
    assert await recipients_of(engine, fan.broadcast_id) == [
        "hanako..mama@docomo.ne.jp", "ichiro-2@i.softbank.jp", "ichiro@softbank.ne.jp",
        "kyoudai@ezweb.ne.jp", "taro.papa@docomo.ne.jp",
    ]
    assert fan.recipients == 5 and fan.skipped == {}
    category = await engine.pool.fetchval(
        "SELECT category FROM broadcasts WHERE id = $1", fan.broadcast_id
    )
    assert category == "school_event"


async def test_overlapping_paths_still_give_one_delivery_per_address(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    audience = Audience(
        schools=(sho1.id,), grades=(await grade_of(schools, "sho1", 1),),
    )
    fan = await send_broadcast(
        schools, engine.queue, message(to=["kyoudai@ezweb.ne.jp"]), audience,
        Category.NOTICE, 86400,
    )
    got = await recipients_of(engine, fan.broadcast_id)
    assert len(got) == len(set(got)) == 5
    assert "saburo@example.jp" not in got


async def test_unconfirmed_left_and_suppressed_contacts_are_counted_not_sent(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    await import_csv(schools, "sho1,3,1,3,高橋四郎,shiro@example.jp,\n", confirmed=False)
    await leave(schools, "hanako..mama@docomo.ne.jp")
    await Suppressions(engine.pool, engine.queue.sealer).add("ichiro@softbank.ne.jp", "userunknown")
    fan = await send_broadcast(
        schools, engine.queue, message(),
        Audience(grades=(await grade_of(schools, "sho1", 3),)), Category.NOTICE, 86400,
    )
    assert fan.skipped == {SkipReason.UNCONFIRMED: 1, SkipReason.LEFT: 1}
    assert fan.suppressed == 1
    rows = {r["recipient"]: r for r in await engine.queue.deliveries_of(fan.broadcast_id)}
    assert "shiro@example.jp" not in rows and "hanako..mama@docomo.ne.jp" not in rows
    assert rows["ichiro@softbank.ne.jp"]["state"] == "failed"
    assert rows["ichiro@softbank.ne.jp"]["reason"] == "suppressed"
    skipped = await engine.pool.fetchval(
        "SELECT skipped::text FROM broadcasts WHERE id = $1", fan.broadcast_id
    )
    assert '"left": 1' in skipped and '"unconfirmed": 1' in skipped


async def test_nobody_left_is_a_clear_error_and_stores_nothing(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS, confirmed=False)
    with pytest.raises(InputError, match="未確認の連絡先 5 件"):
        await send_broadcast(
            schools, engine.queue, message(),
            Audience(grades=(await grade_of(schools, "sho1", 3),)), Category.NOTICE, 86400,
        )
    assert await engine.pool.fetchval("SELECT count(*) FROM broadcasts") == 0


async def test_group_members_receive_only_the_categories_their_group_takes(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    watch = await add_group(
        schools, "見守り隊", kind="volunteers", is_public=True,
        categories=[Category.SUSPICIOUS_PERSON, Category.EMERGENCY],
    )
    await add_contact(schools, "citizen@example.jp", groups=[watch.id], confirmed=True)
    # Also a guardian at 第一小: reached through the school, the group's conditions do not apply.
    await add_contact(schools, "taro.papa@docomo.ne.jp", groups=[watch.id])
    sho1 = await find_organisation(schools.pool, "sho1")

    with pytest.raises(InputError, match="受け取らない"):
        await send_broadcast(
            schools, engine.queue, message(), Audience(groups=(watch.id,)), Category.NOTICE,
            86400,
        )
    fan = await send_broadcast(
        schools, engine.queue, message(), Audience(schools=(sho1.id,), groups=(watch.id,)),
        Category.NOTICE, 86400,
    )
    got = await recipients_of(engine, fan.broadcast_id)
    assert "citizen@example.jp" not in got and "taro.papa@docomo.ne.jp" in got
    assert fan.skipped == {SkipReason.CATEGORY: 1}

    fan = await send_broadcast(
        schools, engine.queue, message(), Audience(groups=(watch.id,)),
        Category.SUSPICIOUS_PERSON, 86400,
    )
    assert await recipients_of(engine, fan.broadcast_id) == [
        "citizen@example.jp", "taro.papa@docomo.ne.jp"
    ]


async def test_accounts_in_a_group_reach_their_guardians(engine: Engine, schools: People) -> None:
    staff = await add_group(schools, "教職員", owner="sho1", kind="staff")
    await import_csv(
        schools,
        "学校,氏名,種別,連絡先1,グループ\n"
        "sho1,校長先生,教職員,kocho@school.example.jp,教職員\n"
        "sho1,教頭先生,教職員,kyoto@school.example.jp,教職員\n"
        "sho2,他校の先生,教職員,other@school.example.jp,\n",
    )
    fan = await send_broadcast(
        schools, engine.queue, message(), Audience(groups=(staff.id,)), Category.NOTICE, 86400
    )
    assert await recipients_of(engine, fan.broadcast_id) == [
        "kocho@school.example.jp", "kyoto@school.example.jp"
    ]


async def test_non_emergency_mail_waits_out_a_groups_night_window(
    engine: Engine, schools: People, clock: FakeClock
) -> None:
    night = NightWindow.parse("21:00-07:00")
    quiet = await add_group(schools, "地域の方", is_public=True, night=night)
    anytime = await add_group(schools, "消防団")
    await add_contact(schools, "sleepy@example.jp", groups=[quiet.id], confirmed=True)
    await add_contact(schools, "both@example.jp", groups=[quiet.id, anytime.id], confirmed=True)
    clock.advance(12 * 3600)  # 22:00 JST
    audience = Audience(groups=(quiet.id, anytime.id))

    fan = await send_broadcast(schools, engine.queue, message(), audience, Category.NOTICE, 3600)
    assert fan.waiting == 1
    rows = {
        r["recipient"]: r
        for r in await opened_rows(
            engine.pool, engine.queue.sealer,
            "SELECT recipient_sealed, next_attempt_at, expires_at FROM deliveries "
            "WHERE broadcast_id = $1", fan.broadcast_id,
        )
    }
    morning = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)  # 07:00 JST the next day
    assert rows["sleepy@example.jp"]["next_attempt_at"] == morning
    assert (rows["sleepy@example.jp"]["expires_at"] - morning).total_seconds() == 3600
    assert rows["both@example.jp"]["next_attempt_at"] == clock.now()

    urgent = await send_broadcast(
        schools, engine.queue, message(), audience, Category.EMERGENCY, 3600
    )
    assert urgent.waiting == 0


def test_night_window_end_is_found_across_midnight() -> None:
    night = NightWindow.parse("21:00〜7:00")
    jst_2330 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    jst_0630 = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    jst_1200 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert night.end_after(jst_2330) == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    assert night.end_after(jst_0630) == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    assert night.end_after(jst_1200) is None
    with pytest.raises(InputError, match="21:00-07:00"):
        NightWindow.parse("夜")
