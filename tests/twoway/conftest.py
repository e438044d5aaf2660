"""Fixtures for the two-way tests: people on a fresh database, a school with families, sending."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from engine.delivery.context import Engine
from engine.people import Audience, Category, OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.clock import FakeClock
from engine.platform.config import PeopleSettings
from engine.queue import AttemptResult, NewBroadcast, Outcome
from engine.twoway import link_deliveries, send_broadcast

# 07:30 JST on a school day (Tuesday 24 November 2026).
MORNING = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)

HEADER = "学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ\n"
# Two classes of grade 3 and one of grade 1 at sho1; one child at sho2. 山田 太郎 and 次郎 share
# a guardian address (kyoudai@...), 太郎 has two guardians.
ROWS = (
    "sho1,3,1,1,山田太郎,taro.papa@docomo.ne.jp,kyoudai@ezweb.ne.jp\n"
    "sho1,3,1,2,佐藤花子,hanako.mama@docomo.ne.jp,\n"
    "sho1,3,2,1,鈴木一郎,ichiro@softbank.ne.jp,ichiro-2@i.softbank.jp\n"
    "sho1,1,1,5,山田次郎,kyoudai@ezweb.ne.jp,\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp,\n"
)


@dataclass
class World:
    engine: Engine
    people: People
    clock: FakeClock

    async def account(self, name_number: tuple[str, int, str, int]) -> int:
        """The account of (school code, grade, class name, number)."""
        school, grade, klass, number = name_number
        found: int = await self.people.pool.fetchval(
            "SELECT a.id FROM accounts a JOIN organisations o ON o.id = a.school_id "
            "JOIN grades g ON g.id = a.grade_id JOIN classes c ON c.id = a.class_id "
            "WHERE o.code = $1 AND g.grade = $2 AND c.name = $3 AND a.number = $4",
            school, grade, klass, number,
        )
        assert found is not None
        return found

    async def school(self, code: str) -> int:
        found: int = await self.people.pool.fetchval(
            "SELECT id FROM organisations WHERE code = $1", code
        )
        return found

    async def grade(self, school: str, grade: int) -> int:
        found: int = await self.people.pool.fetchval(
            "SELECT g.id FROM grades g JOIN organisations o ON o.id = g.school_id "
            "WHERE o.code = $1 AND g.grade = $2", school, grade,
        )
        return found

    async def class_id(self, school: str, grade: int, name: str) -> int:
        found: int = await self.people.pool.fetchval(
            "SELECT c.id FROM classes c JOIN grades g ON g.id = c.grade_id "
            "JOIN organisations o ON o.id = g.school_id "
            "WHERE o.code = $1 AND g.grade = $2 AND c.name = $3", school, grade, name,
        )
        return found

    async def contact(self, address: str) -> int:
        found: int = await self.people.pool.fetchval(
            "SELECT id FROM contacts WHERE address_hash = $1",
            self.people.sealer.lookup_hash(address, "contact.address"),
        )
        return found

    async def send(self, audience: Audience) -> int:
        """Fan out a broadcast, link its deliveries, and deliver them all (as a runner would)."""
        fan = await send_broadcast(
            self.people, self.engine.queue,
            NewBroadcast(sender="school@example.jp", subject="お知らせ", body="本文\n",
                         recipients=[]),
            audience, Category.SCHOOL_EVENT, 86400,
        )
        await link_deliveries(self.people.pool, self.people, fan.broadcast_id)
        now = self.clock.now()
        claimed = await self.engine.queue.claim("test-runner", 1000, now, 60)
        await self.engine.queue.record(
            "test-runner", [AttemptResult(c.id, Outcome.DELIVERED, now, 250) for c in claimed]
        )
        return fan.broadcast_id

    async def deliveries(self, broadcast_id: int) -> dict[str, int]:
        """Recipient address -> delivery id."""
        rows = await self.engine.queue.deliveries_of(broadcast_id)
        return {r["recipient"]: r["id"] for r in rows}


@pytest.fixture
async def world(engine: Engine) -> AsyncIterator[World]:
    clock = FakeClock(MORNING)
    people = await People.open(engine.pool, PeopleSettings(key=engine.settings.people.key), clock)
    await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho2", "第二小学校")
    plan = await plan_import(people, parse_rows((HEADER + ROWS).encode()))
    assert plan.errors == []
    await write_import(people, plan, True)
    yield World(engine, people, clock)
