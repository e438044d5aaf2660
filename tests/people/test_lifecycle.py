"""The school year and contract end: rollover, purge, and no plaintext in the people tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.delivery.context import Engine
from engine.people import People
from engine.people.accounts import purge
from engine.people.class_moves import parse_class_moves
from engine.people.contacts import add_contact, leave
from engine.people.directory import add_group, current_year, find_organisation
from engine.people.rollover import Farewell, rollover
from engine.platform.config import PeopleSettings
from engine.platform.errors import ConfigError, InputError
from engine.platform.sealing import new_key_text
from engine.queue import NewBroadcast

from .conftest import import_csv

ROWS = (
    "sho1,5,1,1,五年生,go@example.jp,\n"
    "sho1,6,2,1,六年生,roku@example.jp,kyoudai@example.jp\n"
    "sho2,6,1,1,他校の六年生,tako@example.jp,\n"
    "chu1,1,1,1,中学一年,kyoudai@example.jp,\n"
)

PEOPLE_TABLES = (
    "organisations", "school_years", "grades", "classes", "groups", "accounts", "contacts",
    "contact_accounts", "account_groups", "contact_groups", "registration_requests",
    "registration_attempts",
)


async def placement(people: People) -> dict[str, tuple[str, int | None, str | None, int]]:
    """Account id -> (state, grade, class, year), keyed by the school code and number."""
    rows = await people.pool.fetch(
        "SELECT o.code, a.number, a.state, g.grade, c.name, g.year FROM accounts a "
        "JOIN organisations o ON o.id = a.school_id LEFT JOIN grades g ON g.id = a.grade_id "
        "LEFT JOIN classes c ON c.id = a.class_id ORDER BY o.code, g.grade"
    )
    return {
        f"{r['code']}-{r['grade'] if r['state'] == 'active' else 'old'}-{r['number']}":
        (r["state"], r["grade"], r["name"], r["year"])
        for r in rows
    }


async def test_rollover_moves_children_up_and_closes_graduates(schools: People) -> None:
    await import_csv(schools, ROWS)
    year = await current_year(schools.pool, schools.clock.now())
    preview = await rollover(schools, year + 1, dry_run=True)
    assert (preview.advancing, preview.graduating, preview.applied) == (2, 2, False)
    before = await placement(schools)
    assert await placement(schools) == before

    done = await rollover(schools, year + 1)
    assert done.applied and {s.code: (s.advancing, s.graduating) for s in done.schools} == {
        "sho1": (1, 1), "sho2": (0, 1), "chu1": (1, 0),
    }
    after = await placement(schools)
    assert after["sho1-6-1"] == ("active", 6, "1", year + 1)   # the fifth-grader, class kept
    assert after["chu1-2-1"] == ("active", 2, "1", year + 1)
    assert after["sho1-old-1"][0] == "closed" and after["sho2-old-1"][0] == "closed"
    assert await current_year(schools.pool, schools.clock.now()) == year + 1


async def test_rollover_to_another_year_is_refused_and_changes_nothing(schools: People) -> None:
    await import_csv(schools, ROWS)
    year = await current_year(schools.pool, schools.clock.now())
    before = await placement(schools)
    with pytest.raises(InputError, match=str(year + 1)):
        await rollover(schools, year + 2)
    assert await placement(schools) == before


async def test_purging_a_school_keeps_contacts_other_schools_still_use(schools: People) -> None:
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    watch = await add_group(schools, "見守り", owner="sho1")
    await add_contact(schools, "citizen@example.jp", groups=[watch.id], confirmed=True)
    result = await purge(schools, sho1)
    # go, roku and citizen go; kyoudai stays for the junior high child.
    assert (result.accounts, result.contacts, result.group_memberships) == (2, 3, 1)
    assert await schools.pool.fetchval("SELECT count(*) FROM contacts") == 2
    assert await schools.pool.fetchval("SELECT count(*) FROM accounts") == 2

    everything = await purge(schools, None)
    assert (everything.accounts, everything.contacts) == (2, 2)
    for table in ("accounts", "contacts", "contact_accounts", "contact_groups"):
        assert await schools.pool.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_another_key_is_refused_for_a_database_set_up_with_one(
    engine: Engine, schools: People
) -> None:
    with pytest.raises(ConfigError, match="鍵"):
        await People.open(engine.pool, PeopleSettings(key=new_key_text()))


async def test_people_tables_hold_no_plaintext_address_or_name(
    engine: Engine, schools: People
) -> None:
    secrets = ["go@example.jp", "roku@example.jp", "kyoudai@example.jp", "五年生", "六年生",
               "中学一年"]
    await import_csv(schools, ROWS)
    # A pending registration, with a wrong code counted against its address.
    from engine.people.registration import RegistrationError, create_request, register_code

    secrets.append("touroku.chuu@docomo.ne.jp")
    pending = await create_request(schools, "touroku.chuu@docomo.ne.jp", "sho1")
    with pytest.raises(RegistrationError):
        await register_code(schools, pending.id, "KX7M-3QHD-WA9R", "192.0.2.1")
    codes = [
        schools.sealer.open(r["code_sealed"], "account.code")
        for r in await engine.pool.fetch("SELECT code_sealed FROM accounts")
    ]
    # Every column of every row, as PostgreSQL prints it (bytea as hex, so search hex too).
    for table in PEOPLE_TABLES:
        rows = await engine.pool.fetch(f"SELECT t::text AS row FROM {table} t")
        dump = "\n".join(r["row"] for r in rows)
        for secret in secrets + codes:
            assert secret not in dump, (table, secret)
            assert secret.encode().hex() not in dump, (table, secret)
    # And the table files themselves, when the server's data directory is on this machine.
    await engine.pool.execute("CHECKPOINT")
    data_dir = Path(await engine.pool.fetchval("SHOW data_directory"))
    if not os.access(data_dir, os.R_OK):
        pytest.skip("the test server's files are not readable here")
    files = {
        table: (data_dir / await engine.pool.fetchval(
            "SELECT pg_relation_filepath($1::regclass)", table
        )).read_bytes()
        for table in PEOPLE_TABLES
    }
    # The search works: a school's name is not personal and is stored as it is.
    assert "第一小学校".encode() in files["organisations"]
    for table, raw in files.items():
        for secret in secrets + codes:
            assert secret.encode() not in raw, (table, secret)


MOVES_HEADER = "学校,学年,組,番号,新しい組,新しい番号\n"


async def test_class_changes_from_a_file_are_applied_with_the_rollover(schools: People) -> None:
    await import_csv(
        schools,
        "sho1,4,1,1,一組の一番,a@example.jp,\n"
        "sho1,4,1,2,一組の二番,b@example.jp,\n"
        "sho1,4,2,1,二組の一番,c@example.jp,\n"
        "sho1,4,2,2,二組の二番,d@example.jp,\n",
    )
    year = await current_year(schools.pool, schools.clock.now())
    # The two first numbers swap classes and keep their numbers; 一組の二番 goes to a new 3組.
    moves = parse_class_moves(
        (MOVES_HEADER + "sho1,4,1,1,2,1\nsho1,4,2,1,1,1\nsho1,4,1,2,3組,\n").encode("cp932")
    )
    preview = await rollover(schools, year + 1, dry_run=True, moves=moves)
    assert preview.moved == 3 and not preview.applied
    done = await rollover(schools, year + 1, moves=moves)
    assert done.moved == 3
    rows = await schools.pool.fetch(
        "SELECT a.name_sealed, c.name, a.number, g.grade FROM accounts a "
        "JOIN classes c ON c.id = a.class_id JOIN grades g ON g.id = a.grade_id"
    )
    where = {
        schools.sealer.open(r["name_sealed"], "account.name"): (r["grade"], r["name"], r["number"])
        for r in rows
    }
    assert where == {
        "一組の一番": (5, "2", 1), "二組の一番": (5, "1", 1),
        "一組の二番": (5, "3", None), "二組の二番": (5, "2", 2),
    }


async def test_a_bad_class_change_file_changes_nothing(schools: People) -> None:
    await import_csv(schools, ROWS)
    year = await current_year(schools.pool, schools.clock.now())
    before = await placement(schools)
    moves = parse_class_moves(
        (MOVES_HEADER + "sho1,5,1,1,2,\nsho1,5,1,9,2,\nsho1,6,2,1,1,\n").encode()
    )
    with pytest.raises(InputError) as caught:
        await rollover(schools, year + 1, moves=moves)
    assert "3 行目" in str(caught.value) and "その児童生徒はいません" in str(caught.value)
    assert "4 行目" in str(caught.value) and "卒業する学年" in str(caught.value)
    assert "2 行目" not in str(caught.value)
    assert await placement(schools) == before
    assert await current_year(schools.pool, schools.clock.now()) == year
    with pytest.raises(InputError, match="2 行目.*番号「x」"):
        parse_class_moves((MOVES_HEADER + "sho1,5,1,x,2,\n").encode())


async def test_graduates_contacts_are_told_in_the_same_commit(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    await leave(schools, "tako@example.jp")
    year = await current_year(schools.pool, schools.clock.now())
    farewell = Farewell(
        NewBroadcast("kyouiku@example.jp", "配信終了のお知らせ", "ご卒業おめでとうございます。\n",
                     []),
        engine.queue, 86400,
    )
    preview = await rollover(schools, year + 1, dry_run=True, farewell=farewell)
    assert preview.told == 2 and preview.farewell_id is None
    assert await engine.pool.fetchval("SELECT count(*) FROM broadcasts") == 0

    done = await rollover(schools, year + 1, farewell=farewell)
    assert done.told == 2 and done.farewell_id is not None
    told = await engine.queue.deliveries_of(done.farewell_id)
    assert sorted(r["recipient"] for r in told) == ["kyoudai@example.jp", "roku@example.jp"]
