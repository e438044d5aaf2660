"""Accounts CSV: encodings, headers, every bad row with its line, siblings, export round trip."""

from __future__ import annotations

import pytest

from engine.people import People
from engine.people.accounts import export_csv, plan_import
from engine.people.codes import ALPHABET, new_code, normalise_code
from engine.people.csv_import import parse_rows
from engine.people.directory import add_group
from engine.people.importing import import_accounts
from engine.platform.errors import InputError

from .conftest import HEADER, import_csv

GOOD = "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,haha@ezweb.ne.jp,\n"


def test_cp932_utf8_and_bom_files_are_detected() -> None:
    text = HEADER + GOOD
    assert parse_rows(text.encode("cp932")).encoding == "cp932"
    assert parse_rows(text.encode("utf-8")).encoding == "utf-8"
    bom = parse_rows(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert bom.encoding == "utf-8" and bom.errors == []
    [row] = bom.rows
    assert (row.school, row.grade, row.class_name, row.number, row.name) == (
        "sho1", 3, "1", 1, "山田太郎"
    )
    assert row.contacts == ("taro@docomo.ne.jp", "haha@ezweb.ne.jp")


def test_english_headers_and_japanese_spellings_of_values() -> None:
    text = "school,grade,class,number,name,contact1,contact2,contact3\n" \
           "sho1,３年,２組,０７,Taro,a@DOCOMO.ne.jp,,b@example.jp\n"
    [row] = parse_rows(text.encode()).rows
    assert (row.grade, row.class_name, row.number) == (3, "2", 7)
    assert row.contacts == ("a@docomo.ne.jp", "b@example.jp")


def test_a_mis_encoded_line_is_reported_by_number_and_the_rest_is_read() -> None:
    data = (HEADER + GOOD).encode("cp932") + "sho1,3,1,2,佐藤花子,x@example.jp,,\n".encode() \
        + "sho1,3,1,3,鈴木一郎,y@example.jp,,\n".encode("cp932")
    parsed = parse_rows(data)
    assert parsed.encoding == "cp932"
    assert [r.line for r in parsed.rows] == [2, 4]
    [(line, why)] = parsed.errors
    assert line == 3 and "cp932" in why


def test_every_bad_row_is_reported_with_its_line_and_reason() -> None:
    text = HEADER + (
        GOOD
        + "sho1,3,1,2,佐藤花子,not-an-address,,\n"
        + "sho1,,1,3,鈴木一郎,y@example.jp,,\n"
        + "sho1,3,1,x,高橋,z@example.jp,,\n"
        + ",3,1,5,名無し,w@example.jp,,\n"
        + 'sho1,3,1,6,"引用符,v@example.jp,,\n'
        + "sho1,3,1,7,,v@example.jp,,\n"
        + "sho1,3,1,8,多すぎ,u@example.jp,,,余分\n"
        + "\n"
        + GOOD.replace(",1,山田", ",9,山田")
    )
    parsed = parse_rows(text.encode())
    assert [r.line for r in parsed.rows] == [2, 11]
    errors = dict(parsed.errors)
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9]
    assert "連絡先1「not-an-address」" in errors[3]
    assert "学年が必要" in errors[4]
    assert "番号「x」" in errors[5]
    assert "学校が空" in errors[6]
    assert "引用符" in errors[7]
    assert "氏名が空" in errors[8]
    assert "列が多すぎます" in errors[9]


def test_an_unknown_header_or_a_missing_column_refuses_the_file() -> None:
    with pytest.raises(InputError, match="見出し「住所」"):
        parse_rows("学校,氏名,住所\nsho1,太郎,東京\n".encode())
    with pytest.raises(InputError, match="氏名"):
        parse_rows("学校,学年\nsho1,3\n".encode())
    with pytest.raises(InputError, match="空"):
        parse_rows(b"\n\n")


async def test_rows_naming_unknown_schools_groups_or_taken_numbers_are_refused(
    schools: People,
) -> None:
    await import_csv(schools, GOOD)
    await add_group(schools, "見守り隊")
    text = HEADER + (
        "nosuch,3,1,1,A,a@example.jp,,\n"
        "sho1,3,1,1,B,b@example.jp,,\n"          # the account in the database: updated
        "sho1,7,1,1,C,c@example.jp,,\n"          # an elementary school has 6 grades
        "sho1,3,1,2,D,d@example.jp,,見守り隊、囲碁部\n"
        "sho1,3,1,3,E,e@example.jp,,見守り隊\n"
        "sho1,3,1,3,F,f@example.jp,,\n"          # the same number twice in the file
    )
    plan = await plan_import(schools, parse_rows(text.encode()))
    errors = dict(plan.errors)
    assert sorted(errors) == [2, 4, 5, 7]
    assert "nosuch" in errors[2] and "1〜6" in errors[4]
    assert "囲碁部" in errors[5] and "6 行目と重なります" in errors[7]
    assert [p.row.line for p in plan.rows] == [3, 6]
    assert plan.rows[0].existing is not None and plan.rows[1].existing is None
    assert len(plan.rows[1].group_ids) == 1


async def test_siblings_share_one_contact_and_confirmation_never_goes_back(
    schools: People,
) -> None:
    first = await import_csv(
        schools,
        "sho1,3,1,1,山田太郎,oya@docomo.ne.jp,,\nsho1,1,2,4,山田次郎,oya@docomo.ne.jp,,\n",
        confirmed=False,
    )
    assert (first.accounts, first.new_contacts, first.confirmed) == (2, 1, 0)
    assert await schools.pool.fetchval("SELECT count(*) FROM contact_accounts") == 2
    second = await import_csv(schools, "sho2,2,1,1,山田三郎,oya@docomo.ne.jp,,\n")
    assert (second.new_contacts, second.existing_contacts, second.confirmed) == (0, 1, 1)
    await import_csv(schools, "sho2,2,1,2,山田四郎,oya@docomo.ne.jp,,\n", confirmed=False)
    assert await schools.pool.fetchval(
        "SELECT count(*) FROM contacts WHERE confirmed_at IS NOT NULL"
    ) == 1


async def test_export_is_bom_csv_that_import_reads_back(schools: People) -> None:
    await add_group(schools, "見守り隊")
    await import_csv(
        schools,
        "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,haha@ezweb.ne.jp,見守り隊\n"
        "sho2,2,1,1,佐藤花子,q..q@docomo.ne.jp,,\n",
    )
    text = await export_csv(schools)
    assert text.startswith(
        "\ufeffID,学校,学年,組,番号,氏名,種別,登録コード,連絡先1,連絡先2,グループ,登録状況\r\n"
    )
    parsed = parse_rows(text.encode("utf-8"))
    assert parsed.errors == []
    taro, hanako = parsed.rows
    assert (taro.name, taro.contacts, taro.groups) == (
        "山田太郎", ("taro@docomo.ne.jp", "haha@ezweb.ne.jp"), ("見守り隊",)
    )
    assert hanako.contacts == ("q..q@docomo.ne.jp",) and hanako.code is not None
    assert text.count("登録済み") == 2
    # Read back into the same database, every row names its account: nothing changes.
    report = await import_accounts(schools, parsed)
    assert (report.errors, report.added, report.updated, report.unchanged) == ([], 0, 0, 2)
    assert report.changes == [] and report.applied
    assert await export_csv(schools) == text


def test_registration_codes_are_unambiguous_and_forgiving() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 14 and all(ch in ALPHABET for ch in code.replace("-", ""))
        assert normalise_code(code.lower().replace("-", " ")) == code
    assert not set("0O1IL2Z5S8B") & set(ALPHABET)
    with pytest.raises(InputError, match="登録コード"):
        normalise_code("ABCD-EFGH-IJKL")


async def test_a_bulk_import_and_its_first_broadcast_leave_fresh_planner_statistics(
    schools: People,
) -> None:
    """Pages opened right after a board's import and first send must not be planned on
    default selectivities (engine/platform/db.analyze): the tables are analysed at once."""
    from engine.people import Audience, Category
    from engine.platform.db import BULK_ROWS
    from engine.queue import NewBroadcast, Priority, Queue
    from engine.twoway import send_broadcast

    rows = "".join(
        f"sho1,{1 + i % 6},{1 + i // 6 % 4},{i // 24 + 1},児童{i},p{i}@docomo.ne.jp,,\n"
        for i in range(BULK_ROWS)
    )
    await import_csv(schools, rows)
    # pg_stats has a table's columns once it is analysed (autovacuum waits a minute or more).
    analysed = "SELECT DISTINCT tablename AS relname FROM pg_stats WHERE schemaname = 'public'"
    assert {"contacts", "accounts", "contact_accounts"} <= {
        r["relname"] for r in await schools.pool.fetch(analysed)
    }
    sho1 = await schools.pool.fetchval("SELECT id FROM organisations WHERE code = 'sho1'")
    fan = await send_broadcast(
        schools, Queue(schools.pool, schools.sealer),
        NewBroadcast("school@example.jp", "お知らせ", "本文", [], Priority.NORMAL),
        Audience(schools=(sho1,)), Category.NOTICE, 86400,
    )
    assert fan.recipients == BULK_ROWS
    assert {"delivery_contacts", "delivery_accounts"} <= {
        r["relname"] for r in await schools.pool.fetch(analysed)
    }
