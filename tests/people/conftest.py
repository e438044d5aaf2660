"""Fixtures for the people tests: a people store on a fresh database, a board and schools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine.delivery.context import Engine
from engine.people import OrgKind, People
from engine.people.accounts import ImportResult, plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.clock import FakeClock
from engine.platform.config import PeopleSettings

# 10:00 JST on a school day.
DAYTIME = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

HEADER = "学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ\n"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAYTIME)


@pytest.fixture
async def people(engine: Engine, clock: FakeClock) -> AsyncIterator[People]:
    yield await People.open(engine.pool, PeopleSettings(key=engine.settings.people.key), clock)


@pytest.fixture
async def schools(people: People) -> People:
    """A board with two elementary schools (sho1, sho2) and a junior high (chu1)."""
    await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho2", "第二小学校")
    await add_organisation(people, OrgKind.JUNIOR_HIGH, "chu1", "第一中学校")
    return people


async def import_csv(
    people: People, text: str, confirmed: bool = True, encoding: str = "utf-8"
) -> ImportResult:
    """Import rows that must all be good (the header is added when missing)."""
    if not text.startswith(("学校", "school")):
        text = HEADER + text
    plan = await plan_import(people, parse_rows(text.encode(encoding)))
    assert plan.errors == []
    return await write_import(people, plan, confirmed)
