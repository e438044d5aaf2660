"""Cells a spreadsheet would run as a formula are neutralised in every CSV mamoru writes.

Every writer goes through engine/platform/csv_io.csv_text (checked over the source below), so
a registered address "=1+1@..." or a name "=HYPERLINK(...)" reaches Excel as text, prefixed
with a single quote; the importers drop that quote again, so an export imports as it was."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from staff.conftest import World, world  # noqa: F401  (the fixture, reused)

from engine.bounce.suppression import Suppressions, parse_csv
from engine.delivery.context import Engine
from engine.people import People
from engine.people.accounts import export_csv, plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.platform.csv_io import csv_cell, csv_text

ROOT = Path(__file__).resolve().parents[2]
DANGEROUS = ["=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1"]


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


@pytest.mark.parametrize("value", DANGEROUS)
def test_csv_text_quotes_every_text_cell_that_starts_a_formula(value: str) -> None:
    (header, row) = cells(csv_text(["a", "b"], [[value, csv_cell(value)]]))
    # Both the raw value and one a caller had already quoted come out quoted once.
    assert row == ["'" + value, "'" + value]


def test_numbers_and_plain_text_are_left_alone() -> None:
    (_, row) = cells(csv_text(["n", "m", "t"], [[-5, 3, "山田 '=x"]]))
    assert row == ["-5", "3", "山田 '=x"]


def test_no_module_writes_csv_but_csv_io() -> None:
    writers = []
    for package in ("engine", "admin_api", "inbound", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"csv\.(writer|DictWriter)\(", path.read_text("utf-8")):
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["engine/platform/csv_io.py"]


async def test_recipients_csv_writes_a_registered_formula_address_as_text(
    world: World,  # noqa: F811
) -> None:
    people = world.api.people
    plan = await plan_import(people, parse_rows(
        "学校,学年,組,番号,氏名,連絡先1\nsho1,6,1,1,=HYPERLINK(\"x\"),=1+1@example.jp\n".encode()))
    assert plan.errors == []
    await write_import(people, plan, True)
    token = await world.login("admin1")
    async with world.client(token) as c:
        made = await c.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "遠足", "body": "来週は遠足です。",
            "audience": {"schools": [world.orgs["sho1"]]},
        })
        assert made.status_code == 201, made.text
        r = await c.get(f"/api/staff/broadcasts/{made.json()['broadcast_id']}/recipients.csv")
    rows = cells(r.text)
    mine = [row for row in rows if "1+1@example.jp" in row[0]]
    assert [row[0] for row in mine] == ["'=1+1@example.jp"]
    assert mine[0][1].startswith("'=HYPERLINK")
    assert not any(cell[:1] in "=+-@" and cell for row in rows[1:] for cell in row
                   if not cell.lstrip("-").isdigit())


async def test_accounts_and_suppressions_round_trip_through_their_exports(
    engine: Engine,
) -> None:
    people = await People.open(engine.pool, engine.settings.people)
    from engine.people import OrgKind
    from engine.people.directory import add_organisation

    await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
    roster = "学校,学年,組,番号,氏名,連絡先1\nsho1,3,1,1,=cmd|' /C calc'!A0,-sum@example.jp\n"
    plan = await plan_import(people, parse_rows(roster.encode()))
    assert plan.errors == []
    await write_import(people, plan, True)
    exported = await export_csv(people)
    assert "'=cmd" in exported and "'-sum@example.jp" in exported
    # Read back, the cells are the child's name and address as registered.
    (row,) = parse_rows(exported.encode("utf-8")).rows
    assert row.name == "=cmd|' /C calc'!A0" and row.contacts == ("-sum@example.jp",)

    suppressions = Suppressions(engine.pool, people.sealer)
    await suppressions.add("=2+3@example.jp", "unknown_user", note="-note")
    text = await suppressions.export_csv()
    assert "'=2+3@example.jp" in text and "'-note" in text
    parsed = parse_csv(text, "export.csv", datetime.now(UTC))
    assert [row[0] for _, row in parsed] == ["=2+3@example.jp"]
