"""Import that updates: export -> edit -> import, --close-missing, dry run = real run,
UTF-16 and CP932 files, and rollover's dry run refusing what the real run refuses."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from engine.people import People
from engine.people.accounts import export_csv
from engine.people.class_moves import parse_class_moves
from engine.people.csv_import import parse_rows
from engine.people.directory import current_year
from engine.people.importing import ImportOptions, changes_csv, import_accounts
from engine.people.rollover import rollover
from engine.platform.csv_io import decode_text
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue

from .conftest import import_csv

ROWS = (
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,haha@ezweb.ne.jp,\n"
    "sho1,3,1,2,佐藤花子,sato@docomo.ne.jp,,\n"
    "sho1,3,2,1,鈴木一郎,suzuki@au.com,,\n"
    "sho2,1,1,1,他校の子,tako@example.jp,,\n"
)


def edited(export: str) -> str:
    """The export edited as an office would: 太郎 renamed, 花子 moved to 2組, 太郎's second
    address changed, 一郎 deleted, a transfer-in added at the end."""
    rows = list(csv.reader(io.StringIO(export.lstrip("\ufeff"))))
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    out = [header]
    for r in body:
        if r[col["氏名"]] == "鈴木一郎":
            continue
        if r[col["氏名"]] == "山田太郎":
            r[col["氏名"]] = "山田 太郎"
            r[col["連絡先2"]] = "haha.new@ezweb.ne.jp"
        if r[col["氏名"]] == "佐藤花子":
            r[col["組"]] = "2"
            r[col["番号"]] = "5"
        out.append(r)
    new = [""] * len(header)
    new[col["学校"]], new[col["学年"]], new[col["組"]], new[col["番号"]] = "sho1", "3", "2", "6"
    new[col["氏名"]], new[col["連絡先1"]] = "転入生", "tennyu@docomo.ne.jp"
    out.append(new)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(out)
    return "\ufeff" + buf.getvalue()


async def state(people: People) -> list[tuple[object, ...]]:
    """Every account with its place and state, and every link (by id): what an import changes."""
    accounts = await people.pool.fetch(
        "SELECT a.id, a.state, a.closed_reason, g.grade, c.name, a.number, a.name_sealed "
        "FROM accounts a LEFT JOIN grades g ON g.id = a.grade_id "
        "LEFT JOIN classes c ON c.id = a.class_id ORDER BY a.id"
    )
    links = await people.pool.fetch(
        "SELECT account_id, contact_id FROM contact_accounts ORDER BY 1, 2"
    )
    return [
        *((r["id"], r["state"], r["closed_reason"], r["grade"], r["name"], r["number"],
           people.sealer.open(r["name_sealed"], "account.name")) for r in accounts),
        *(tuple(r) for r in links),
    ]


async def test_export_edit_import_updates_in_place_and_dry_run_equals_the_real_run(
    schools: People,
) -> None:
    await import_csv(schools, ROWS)
    queue = Queue(schools.pool, schools.sealer)
    now = schools.clock.now()
    # Mail waiting for the replaced address and for a sibling-free address that stays.
    waiting = await queue.enqueue(NewBroadcast(
        "s@city.example.jp", "明日", "本文\n", ["haha@ezweb.ne.jp", "taro@docomo.ne.jp"],
        send_at=now + timedelta(hours=2),
    ), now, 3600)
    sho1 = await export_csv(schools, None)
    data = edited(sho1).encode("utf-8")
    before = await state(schools)

    options = ImportOptions(confirmed=True, close_missing=True)
    preview = await import_accounts(
        schools, parse_rows(data), ImportOptions(True, True, dry_run=True)
    )
    assert await state(schools) == before
    assert not preview.applied
    done = await import_accounts(schools, parse_rows(data), options)
    assert done.applied and done.errors == []
    # The dry run said exactly what the real run did.
    assert preview.changes == done.changes
    assert changes_csv(preview.changes) == changes_csv(done.changes)
    assert (done.added, done.updated, done.unchanged, done.closed) == (1, 2, 1, 1)
    assert (done.links_added, done.links_removed, done.contacts_removed) == (2, 1, 1)
    items = {(c.action, c.name, c.item) for c in done.changes}
    assert {("変更", "山田 太郎", "氏名"), ("変更", "山田 太郎", "連絡先"),
            ("変更", "佐藤花子", "学年・組・番号"), ("追加", "転入生", ""),
            ("終了", "鈴木一郎", "")} == items

    # Nothing doubled: four active accounts (two old ones kept their ids), one closed.
    active = await schools.pool.fetch(
        "SELECT id FROM accounts WHERE state = 'active' ORDER BY id"
    )
    assert len(active) == 4
    assert await schools.pool.fetchval(
        "SELECT closed_reason FROM accounts WHERE state = 'closed'"
    ) == "removed"
    # The replaced address is gone and its unsent mail withdrawn; the kept one still waits.
    rows = {r["recipient"]: r for r in await queue.deliveries_of(waiting)}
    assert rows["haha@ezweb.ne.jp"]["state"] == "failed"
    assert "連絡先の変更" in rows["haha@ezweb.ne.jp"]["last_text"]
    assert rows["taro@docomo.ne.jp"]["state"] == "queued"
    # The new export imports back with no change at all.
    again = await export_csv(schools, None)
    assert "山田 太郎" in again and "haha.new@ezweb.ne.jp" in again and "鈴木一郎" not in again
    after = await state(schools)
    unchanged = await import_accounts(schools, parse_rows(again.encode()), options)
    assert (unchanged.added, unchanged.updated, unchanged.closed) == (0, 0, 0)
    assert unchanged.unchanged == 4 and unchanged.changes == []
    assert await state(schools) == after


async def test_rows_without_ids_match_by_place_then_by_code(schools: People) -> None:
    await import_csv(schools, ROWS)
    code = await schools.pool.fetchval("SELECT code_sealed FROM accounts WHERE number = 2")
    code_text = schools.sealer.open(code, "account.code")
    # By place: the same class and number is the same child (renamed, new address).
    text = "学校,学年,組,番号,氏名,連絡先1\nsho1,3,1,1,山田たろう,taro@docomo.ne.jp\n"
    report = await import_accounts(schools, parse_rows(text.encode()))
    assert (report.added, report.updated) == (0, 1)
    # By code, when the file has no numbers: 花子 found by her registration code.
    text = f"学校,学年,氏名,登録コード\nsho1,3,佐藤はなこ,{code_text}\n"
    report = await import_accounts(schools, parse_rows(text.encode()))
    assert (report.added, report.updated, report.errors) == (0, 1, [])
    assert [c.after for c in report.changes] == ["佐藤はなこ"]
    assert await schools.pool.fetchval("SELECT count(*) FROM accounts") == 4


async def test_a_bad_row_with_close_missing_changes_nothing(schools: People) -> None:
    await import_csv(schools, ROWS)
    before = await state(schools)
    text = "学校,学年,組,番号,氏名\nsho1,3,1,1,山田太郎\nsho1,9,1,2,学年が変\n"
    report = await import_accounts(
        schools, parse_rows(text.encode()), ImportOptions(close_missing=True)
    )
    assert not report.applied and [line for line, _ in report.errors] == [3]
    assert await state(schools) == before
    # An unknown ID is a bad row, never a new account.
    text = "ID,学校,学年,組,番号,氏名\n99999,sho1,3,1,7,誰か\n"
    report = await import_accounts(schools, parse_rows(text.encode()))
    assert report.added == 0 and "ID 99999" in report.errors[0][1]


async def test_utf16_tab_separated_and_cp932_files_import_the_same(schools: People) -> None:
    utf16 = ("学校\t学年\t組\t番号\t氏名\t連絡先1\r\n"
             "sho1\t3\t1\t1\t山田太郎\ttaro@docomo.ne.jp\r\n").encode("utf-16")
    parsed = parse_rows(utf16)
    assert parsed.encoding == "utf-16" and parsed.errors == []
    assert parsed.rows[0].name == "山田太郎"
    assert parsed.rows[0].contacts == ("taro@docomo.ne.jp",)
    cp932 = "学校,学年,組,番号,氏名,連絡先1\nsho1,3,1,1,山田太郎,taro@docomo.ne.jp\n"
    assert parse_rows(cp932.encode("cp932")).rows == parsed.rows
    added = await import_accounts(schools, parsed)
    assert added.added == 1
    # The same file as CP932 names the same child: nothing more.
    same = await import_accounts(schools, parse_rows(cp932.encode("cp932")))
    assert (same.added, same.updated, same.unchanged) == (0, 0, 1)
    # A UTF-16 address list (--to-file) reads as its addresses.
    assert decode_text("a@example.jp\r\nb@example.jp\r\n".encode("utf-16"), "x") == (
        "a@example.jp\nb@example.jp\n"
    )


def test_a_file_in_no_known_encoding_is_one_japanese_error() -> None:
    for data in ("学校,氏名\n".encode("utf-16-le"), "学校,氏名\n".encode("utf-32"),
                 b"\xff\xfe\x00\xd8"):
        with pytest.raises(InputError, match="文字コードが分かりません"):
            parse_rows(data)
    with pytest.raises(InputError, match="文字コードが分かりません"):
        parse_class_moves("学校,学年\n".encode("utf-16-le"))


async def test_rollover_dry_run_refuses_a_colliding_class_file_like_the_real_run(
    schools: People,
) -> None:
    await import_csv(
        schools,
        "sho1,4,1,1,一組の一番,a@example.jp,\nsho1,4,2,2,二組の二番,b@example.jp,\n",
    )
    year = await current_year(schools.pool, schools.clock.now())
    # 一組の一番 goes to 2組 as number 2, which 二組の二番 keeps: a collision.
    moves = parse_class_moves(
        "学校\t学年\t組\t番号\t新しい組\t新しい番号\r\nsho1\t4\t1\t1\t2\t2\r\n".encode("utf-16")
    )
    for dry_run in (True, False):
        with pytest.raises(InputError, match="重なります"):
            await rollover(schools, year + 1, dry_run=dry_run, moves=moves)
        assert await current_year(schools.pool, schools.clock.now()) == year
    fine = parse_class_moves("学校,学年,組,番号,新しい組,新しい番号\nsho1,4,1,1,2,3\n".encode())
    preview = await rollover(schools, year + 1, dry_run=True, moves=fine)
    assert not preview.applied and await current_year(schools.pool, schools.clock.now()) == year
    done = await rollover(schools, year + 1, moves=fine)
    assert (done.applied, done.moved, done.advancing) == (True, preview.moved, preview.advancing)
