"""Single roster changes (edit, move, transfer out/in, an address added or removed, a school
renamed or closed), the rights they need, and the registration rate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.people import OrgKind, People
from engine.people import changes as ch
from engine.people.directory import add_organisation, find_organisation
from engine.people.rate import registration_rate
from engine.people.rollover import Farewell
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue
from engine.staff import roster
from engine.staff.models import ActorKind, Principal, RightsError, Role

from .conftest import import_csv

ROWS = (
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,haha@ezweb.ne.jp,\n"
    "sho1,3,1,2,佐藤花子,sato@docomo.ne.jp,,\n"
    "sho1,3,2,1,鈴木一郎,suzuki@au.com,,\n"
    "sho2,1,1,1,他校の子,tako@example.jp,,\n"
)


async def ids(people: People) -> dict[str, int]:
    rows = await people.pool.fetch("SELECT id, name_sealed FROM accounts")
    return {people.sealer.open(r["name_sealed"], "account.name"): r["id"] for r in rows}


async def test_edit_move_and_transfers_change_one_account_each(schools: People) -> None:
    await import_csv(schools, ROWS)
    by_name = await ids(schools)
    taro = by_name["山田太郎"]
    info = await ch.edit_account(schools, taro, name="山田 太郎", number=7, code="KX7M-3QHD-WA9R")
    assert (info.name, info.number) == ("山田 太郎", 7)
    with pytest.raises(InputError, match="番号は既に使われています"):
        await ch.edit_account(schools, by_name["佐藤花子"], number=7)
    moved = await ch.move_account(schools, taro, 3, "2", 2)
    assert (moved.grade, moved.class_name, moved.number) == (3, "2", 2)
    with pytest.raises(InputError, match="既に使われています"):
        await ch.move_account(schools, by_name["佐藤花子"], 3, "2", 1)
    with pytest.raises(InputError, match="1〜6"):
        await ch.move_account(schools, taro, 9, "1")
    # Transfer in: a new account through the import's checks; its place must be free.
    new = await ch.transfer_in(schools, "sho1", "転入生", 3, "1", 9, ("new@docomo.ne.jp",))
    assert new.where == "sho1 3年1組 9番"
    with pytest.raises(InputError, match="既に登録"):
        await ch.transfer_in(schools, "sho1", "重複", 3, "1", 9)
    assert await schools.pool.fetchval("SELECT count(*) FROM accounts") == 5
    # Transfer out with a notice to the confirmed contacts, in the same transaction.
    queue = Queue(schools.pool, schools.sealer)
    notice = Farewell(NewBroadcast("s@city.example.jp", "転出", "お元気で\n", []), queue, 3600)
    closed = await ch.close_account(schools, taro, notice=notice)
    assert closed.told == 2 and closed.notice_id is not None
    sent = {r["recipient"] for r in await queue.deliveries_of(closed.notice_id)}
    assert sent == {"taro@docomo.ne.jp", "haha@ezweb.ne.jp"}
    assert await schools.pool.fetchval(
        "SELECT closed_reason FROM accounts WHERE id = $1", taro
    ) == "transferred"
    with pytest.raises(InputError, match="ありません"):
        await ch.edit_account(schools, taro, name="x")


async def test_an_address_added_and_removed_and_its_unsent_mail_withdrawn(
    schools: People,
) -> None:
    await import_csv(schools, ROWS + "sho2,2,1,1,山田の弟,taro@docomo.ne.jp,,\n")
    by_name = await ids(schools)
    await ch.add_address(schools, by_name["佐藤花子"], "sato2@DOCOMO.ne.jp", confirmed=True)
    queue = Queue(schools.pool, schools.sealer)
    now = schools.clock.now()
    bid = await queue.enqueue(NewBroadcast(
        "s@city.example.jp", "明日", "本文\n", ["sato2@docomo.ne.jp", "taro@docomo.ne.jp"],
        send_at=now + timedelta(hours=1),
    ), now, 3600)
    # taro@ still receives for the brother: unlinked from 太郎 only, its mail stays.
    kept = await ch.remove_address(schools, "taro@docomo.ne.jp", by_name["山田太郎"])
    assert (kept.links, kept.contact_gone, kept.withdrawn) == (1, False, 0)
    gone = await ch.remove_address(schools, "sato2@docomo.ne.jp")
    assert (gone.links, gone.contact_gone, gone.withdrawn) == (1, True, 1)
    rows = {r["recipient"]: r["state"] for r in await queue.deliveries_of(bid)}
    assert rows == {"sato2@docomo.ne.jp": "failed", "taro@docomo.ne.jp": "queued"}
    with pytest.raises(InputError, match="登録されていません"):
        await ch.remove_address(schools, "sato2@docomo.ne.jp")


async def test_rename_and_close_a_school(schools: People) -> None:
    await import_csv(schools, ROWS)
    org = await ch.rename_school(schools, "sho2", "みどり小学校")
    assert (await find_organisation(schools.pool, "みどり小学校")).id == org.id
    with pytest.raises(InputError, match="既に使われています"):
        await ch.rename_school(schools, "sho1", "みどり小学校")
    org, closed = await ch.close_school(schools, "sho2")
    assert closed == 1
    with pytest.raises(InputError, match="既に閉じています"):
        await ch.close_school(schools, "sho2")
    assert await schools.pool.fetchval(
        "SELECT count(*) FROM accounts WHERE state = 'active'"
    ) == 3


async def test_rights_follow_the_api_and_the_rate_counts_by_sql(schools: People) -> None:
    await import_csv(schools, ROWS)  # confirmed
    await import_csv(schools, "sho1,3,2,2,未登録,mitouroku@example.jp,,\n", confirmed=False)
    by_name = await ids(schools)
    board = await find_organisation(schools.pool, "city")
    sho1 = await find_organisation(schools.pool, "sho1")
    admin = Principal(ActorKind.STAFF, 1, "sho1 admin", Role.SCHOOL, sho1.id, board.id)
    await roster.may_change_account(schools.pool, admin, by_name["山田太郎"])
    with pytest.raises(RightsError):
        await roster.may_change_account(schools.pool, admin, by_name["他校の子"])
    teacher = Principal(ActorKind.STAFF, 2, "t", Role.TEACHER, sho1.id, board.id)
    with pytest.raises(RightsError):
        await roster.may_change_account(schools.pool, teacher, by_name["山田太郎"])
    # Another board's account is unknown, never "not yours".
    other = await add_organisation(schools, OrgKind.BOARD, "town", "となり町教育委員会")
    stranger = Principal(ActorKind.STAFF, 3, "s", Role.BOARD, other.id, other.id)
    with pytest.raises(InputError, match="ありません"):
        await roster.may_change_account(schools.pool, stranger, by_name["山田太郎"])

    rows = {(r.school, r.grade, r.class_name): r for r in await registration_rate(schools.pool)}
    total = rows[("sho1", None, None)]
    assert (total.accounts, total.registered, total.contacts, total.confirmed) == (4, 3, 5, 4)
    assert total.account_rate == 0.75 and total.contact_rate == 1.0
    two = rows[("sho1", 3, "2")]
    assert (two.accounts, two.registered, two.account_rate) == (2, 1, 0.5)
    assert rows[("sho2", 1, None)].accounts == 1
    # A school's administrator sees their school only; asking for another is unknown.
    mine = await roster.rate_for(schools.pool, admin)
    assert {r.school for r in mine} == {"sho1"}
    with pytest.raises(InputError):
        await roster.rate_for(schools.pool, admin, "sho2")
    assert await roster.rate_for(schools.pool, stranger) == []
