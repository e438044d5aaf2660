"""Fixtures of the security tests.

- ``pages``: the guardians' pages on a real database, reached through httpx's ASGI transport
  from any client address (a phone, a network, a reverse proxy).
- ``tenants``: two boards in one database: the staff API world of tests/staff (the board
  "city" with schools sho1 and sho2) plus a second board "town" with its school "tsho", each
  with a board account, a school administrator, a teacher, API keys, a broadcast that asks for
  reads and answers, a template and a draft.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from staff.conftest import (  # noqa: F401  (world: the fixture, reused)
    PASSWORD,
    SHARED_SENDERS,
    UNSIGNED_OK,
    World,
    world,
)
from support import make_settings

from admin_api.app import create_app
from admin_api.site import Site, open_site
from engine.delivery.context import Engine
from engine.message.links import PAGE
from engine.people import Audience, Category, OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import (
    add_group,
    add_organisation,
    current_year,
    find_class,
    find_grade,
    find_organisation,
)
from engine.platform.clock import FakeClock
from engine.queue import NewBroadcast
from engine.staff import accounts, apikeys
from engine.staff.models import Role
from engine.staff.senders import add_sender
from engine.twoway import Question, QuestionKind, send_broadcast
from engine.twoway.asks import Asks, ReadPolicy

# 10:00 Japan time on a school day.
DAYTIME = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
PUBLIC = "https://mail.city.example.jp"
# The reverse proxy the pages are configured to trust.
PROXY = "10.0.0.1"
ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1\n"
    "sho1,3,1,1,山田太郎,papa@docomo.ne.jp\n"
)
QUESTION = Question("q", "出欠", QuestionKind.SINGLE, options=("出", "欠"))


@dataclass
class Pages:
    engine: Engine
    people: People
    clock: FakeClock
    site: Site
    app: FastAPI

    def client(self, peer: str) -> httpx.AsyncClient:
        """A client whose requests come from ``peer`` (the address the server sees)."""
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url=PUBLIC, timeout=10)

    def link(self, delivery_id: int, days: int = 1) -> str:
        until = self.clock.now() + timedelta(days=days)
        return f"/m/{self.site.links.token(PAGE, delivery_id, until)}"

    async def two_way_to_guardian(self) -> tuple[int, str]:
        """A broadcast asking for a read and an answer, to 山田太郎's guardian: (delivery id,
        its page link)."""
        account = await self.people.pool.fetchval("SELECT id FROM accounts LIMIT 1")
        fan = await send_broadcast(
            self.people, self.engine.queue,
            NewBroadcast("school@example.jp", "遠足", "来週は遠足です。\n", []),
            Audience(accounts=(account,)), Category.NOTICE, 86400,
            asks=Asks(read=ReadPolicy(), questions=(QUESTION,),
                      deadline=self.clock.now() + timedelta(days=2)),
        )
        (delivery,) = await self.engine.queue.deliveries_of(fan.broadcast_id)
        return delivery["id"], self.link(delivery["id"])


@pytest.fixture
async def pages(db_url: str) -> AsyncIterator[Pages]:
    clock = FakeClock(DAYTIME)
    settings = make_settings(
        db_url, http={"public_url": PUBLIC, "listen": "", "trusted_proxies": [PROXY]},
    )
    eng = await Engine.open(settings, clock)
    try:
        people = await People.open(eng.pool, settings.people, clock)
        await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
        plan = await plan_import(people, parse_rows(ROSTER.encode()))
        assert plan.errors == []
        await write_import(people, plan, True)
        site = await open_site(settings, people, await eng.verp_secret())
        yield Pages(eng, people, clock, site, create_app(site))
    finally:
        await eng.close()


TOWN_ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1,グループ\n"
    "tsho,2,1,1,町田一郎,ichiro@town.example.jp,tsho見守り\n"
    "tsho,2,1,2,町田二郎,jiro@town.example.jp,\n"
)
QUESTIONS = [
    {"key": "attend", "label": "参加しますか", "kind": "single", "required": True,
     "options": ["参加", "不参加"]},
]
# An id no table reaches.
MISSING = 987_654_321


@dataclass
class Side:
    """One board's things, by id, and who acts for it (session tokens and API keys)."""

    board: int
    school: int
    grade: int
    klass: int
    group: int
    board_group: int
    account: int
    teacher: int
    key: int
    broadcast: int = 0
    template: int = 0
    draft: int = 0
    actors: dict[str, str] = field(default_factory=dict)
    own_broadcast: dict[str, int] = field(default_factory=dict)
    # The board and every school of it.
    orgs: set[int] = field(default_factory=set)


@dataclass
class Tenants:
    w: World
    city: Side
    town: Side


async def _town(w: World) -> None:
    people = w.api.people
    w.orgs["town"] = (await add_organisation(
        people, OrgKind.BOARD, "town", "あおば町教育委員会")).id
    w.orgs["tsho"] = (await add_organisation(
        people, OrgKind.ELEMENTARY, "tsho", "あおば小学校", board="town")).id
    await add_sender(people.pool, w.orgs["town"], "kyouiku@town.example.jp", "", UNSIGNED_OK)
    for org in ("town", "tsho"):
        for address in SHARED_SENDERS:
            await add_sender(people.pool, w.orgs[org], address, "", UNSIGNED_OK)
    w.groups["tsho見守り"] = (await add_group(people, "tsho見守り", "tsho", "volunteers")).id
    w.groups["町全体"] = (await add_group(people, "町全体", "town")).id
    plan = await plan_import(people, parse_rows(TOWN_ROSTER.encode("utf-8")))
    assert plan.errors == []
    await write_import(people, plan, True)
    year = await current_year(people.pool, people.clock.now(), create=False)
    org = await find_organisation(people.pool, "tsho")
    w.classes["tsho-2-1"] = await find_class(people.pool, org, 2, "1", year)
    w.grades["tsho-2"] = await find_grade(people.pool, org, 2, year)
    for login, role, where, classes in (
        ("tboard", Role.BOARD, "town", ()), ("tadmin", Role.SCHOOL, "tsho", ()),
        ("tteacher", Role.TEACHER, "tsho", ("tsho-2-1",)),
    ):
        m = await accounts.add(w.api.staff, accounts.NewStaff(
            login, f"{login} さん", role, w.orgs[where], PASSWORD,
            tuple(w.classes[c] for c in classes),
        ))
        w.staff[login] = m.id


def broadcast_body(w: World, audience: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "sender": "school@example.jp", "subject": "遠足のお知らせ", "body": "来週は遠足です。",
        "audience": audience,
        "read_confirmation": {"remind_after_minutes": 120, "max_reminders": 2},
        "questions": QUESTIONS,
        "answer_deadline": (w.clock.now() + timedelta(days=3)).isoformat(), **extra,
    }


async def _post(w: World, token: str, path: str, body: dict[str, Any]) -> int:
    async with w.client(token) as c:
        r = await c.post(path, json=body)
    assert r.status_code == 201, r.text
    key = "broadcast_id" if "broadcast_id" in r.json() else "id"
    return int(r.json()[key])


async def _side(w: World, board: str, school: str, grade: str, klass: str, group: str,
                board_group: str, logins: tuple[str, str, str]) -> Side:
    pool = w.api.staff.pool
    account: int = await pool.fetchval(
        "SELECT min(id) FROM accounts WHERE school_id = $1", w.orgs[school]
    )
    board_key, _ = await apikeys.create(w.api.staff, w.orgs[board], f"{board} key", None)
    school_key, made = await apikeys.create(w.api.staff, w.orgs[school], f"{school} key", None)
    board_login, admin_login, teacher_login = logins
    orgs = {r["id"] for r in await pool.fetch(
        "SELECT id FROM organisations WHERE id = $1 OR parent_id = $1", w.orgs[board])}
    side = Side(
        w.orgs[board], w.orgs[school], w.grades[grade], w.classes[klass], w.groups[group],
        w.groups[board_group], account, w.staff[teacher_login], made.id, orgs=orgs,
    )
    side.actors = {
        "board": await w.login(board_login), "admin": await w.login(admin_login),
        "teacher": await w.login(teacher_login), "board key": board_key,
        "school key": school_key,
    }
    admin = side.actors["admin"]
    side.broadcast = await _post(
        w, admin, "/api/staff/broadcasts", broadcast_body(w, {"classes": [side.klass]}))
    side.template = await _post(w, admin, "/api/staff/templates", {"name": "休校"})
    side.draft = await _post(w, admin, "/api/staff/drafts", {"name": "下書き"})
    # Each actor's own broadcast, for the filters that need one (a teacher's own class).
    for name, audience in (("board", {"board": True}), ("admin", {"schools": [side.school]}),
                           ("teacher", {"classes": [side.klass]}),
                           ("board key", {"schools": [side.school]}),
                           ("school key", {"schools": [side.school]})):
        side.own_broadcast[name] = await _post(
            w, side.actors[name], "/api/staff/broadcasts", broadcast_body(w, audience))
    return side


@pytest.fixture
async def tenants(world: World) -> AsyncIterator[Tenants]:  # noqa: F811
    await _town(world)
    city = await _side(world, "city", "sho1", "sho1-3", "sho1-3-1", "sho1見守り", "city全体",
                       ("board", "admin1", "teacher31"))
    town = await _side(world, "town", "tsho", "tsho-2", "tsho-2-1", "tsho見守り", "町全体",
                       ("tboard", "tadmin", "tteacher"))
    yield Tenants(world, city, town)
