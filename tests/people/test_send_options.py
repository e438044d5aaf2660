"""`mamoru send`'s audience options resolved to ids, and registration codes finding accounts."""

from __future__ import annotations

import pytest

from cli.audience_cmd import AudienceOptions, audience_of
from engine.delivery.context import Engine
from engine.people import People
from engine.people.contacts import account_for_code, add_contact
from engine.people.directory import add_group
from engine.people.models import Category
from engine.platform.errors import InputError
from engine.queue import NewBroadcast
from engine.twoway import send_broadcast

from .conftest import import_csv

ROWS = (
    "sho1,3,1,1,A,a@example.jp,\n"
    "sho1,3,2,1,B,b@example.jp,\n"
    "sho1,4,1,1,C,c@example.jp,\n"
    "sho2,3,1,1,D,d@example.jp,\n"
)


async def addresses(engine: Engine, people: People, opts: AudienceOptions) -> list[str]:
    audience = await audience_of(people.pool, people, opts)
    message = NewBroadcast("s@example.jp", "件名", "本文\n", [])
    fan = await send_broadcast(people, engine.queue, message, audience, Category.NOTICE, 60)
    return sorted(r["recipient"] for r in await engine.queue.deliveries_of(fan.broadcast_id))


async def test_options_combine_as_operators_expect(engine: Engine, schools: People) -> None:
    await import_csv(schools, ROWS)
    staff = await add_group(schools, "教職員", owner="sho2")
    await add_contact(schools, "t@example.jp", groups=[staff.id], confirmed=True)
    cases = {
        AudienceOptions(schools=("sho1",)): ["a", "b", "c"],
        AudienceOptions(schools=("第一小学校",), grades=("3",)): ["a", "b"],
        AudienceOptions(schools=("sho1", "sho2"), grades=("3年",)): ["a", "b", "d"],
        AudienceOptions(schools=("sho1",), classes=("3-2",)): ["b"],
        AudienceOptions(schools=("sho1",), grades=("3",), classes=("2組",)): ["b"],
        AudienceOptions(schools=("sho1",), grades=("4",), classes=("3-1",)): ["a", "c"],
        AudienceOptions(board=True): ["a", "b", "c", "d"],
        AudienceOptions(schools=("sho1",), groups=("教職員",)): ["a", "b", "c", "t"],
    }
    for opts, expected in cases.items():
        got = await addresses(engine, schools, opts)
        assert got == [f"{x}@example.jp" for x in expected], opts
    first = await schools.pool.fetchval("SELECT min(id) FROM accounts")
    assert await addresses(engine, schools, AudienceOptions(accounts=(first,))) == [
        "a@example.jp"
    ]
    with pytest.raises(InputError, match="--account 999999"):
        await audience_of(schools.pool, schools, AudienceOptions(accounts=(999999,)))


async def test_a_group_name_two_schools_use_must_be_qualified(
    engine: Engine, schools: People
) -> None:
    await add_group(schools, "PTA", owner="sho1")
    await add_group(schools, "PTA", owner="sho2")
    with pytest.raises(InputError, match="sho1/PTA"):
        await audience_of(schools.pool, schools, AudienceOptions(groups=("PTA",)))
    one = await audience_of(schools.pool, schools, AudienceOptions(groups=("sho2/PTA",)))
    assert len(one.groups) == 1


async def test_registration_code_finds_its_account_and_a_second_child_shares_the_address(
    schools: People,
) -> None:
    await import_csv(schools, "sho1,3,1,1,A,,\nsho1,1,1,1,A の弟,,\n")
    rows = await schools.pool.fetch("SELECT id, code_sealed FROM accounts ORDER BY id")
    codes = [schools.sealer.open(r["code_sealed"], "account.code") for r in rows]
    ids = [await account_for_code(schools, c.lower()) for c in codes]
    assert ids == [r["id"] for r in rows]
    assert await account_for_code(schools, "AAAA-AAAA-AAAA") is None
    first = await add_contact(schools, "oya@example.jp", accounts=[ids[0]], confirmed=True)
    second = await add_contact(schools, "oya@example.jp", accounts=[ids[1]])
    assert first == second
    assert await schools.pool.fetchval(
        "SELECT count(*) FROM contact_accounts WHERE contact_id = $1", first
    ) == 2
    # Adding again unconfirmed did not undo the confirmation.
    assert await schools.pool.fetchval(
        "SELECT confirmed_at IS NOT NULL FROM contacts WHERE id = $1", first
    )
