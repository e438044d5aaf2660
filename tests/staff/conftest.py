"""Fixtures for the staff API tests: a board with two schools and their people, staff of each
role, and the staff routers in a FastAPI app served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from support import make_settings, served

from admin_api.staff import StaffApi, mount_staff
from engine.delivery.context import Engine
from engine.message.dkim import DkimSettings
from engine.people import OrgKind, People
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
from engine.platform.config import Settings
from engine.platform.sealing import new_key_text
from engine.staff import accounts
from engine.staff.models import Role
from engine.staff.senders import add_sender

PASSWORD = "correct horse battery"
# The From addresses each organisation may send as (engine/staff/senders.py), its own first
# (the default). The rights tests send from one shared address whatever the actor, so it is
# every organisation's here; the sender rule itself is tested in tests/security/test_senders.py.
UNSIGNED_OK = DkimSettings(allow_unsigned=True)
SHARED_SENDERS = ("sho1@example.jp", "school@example.jp", "board@example.jp",
                  "school@sho1.example.jp")
SENDERS = {
    "city": ("kyouiku@city.example.jp", *SHARED_SENDERS),
    "sho1": SHARED_SENDERS,
    "sho2": ("sho2@example.jp", *SHARED_SENDERS),
}

ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1,グループ\n"
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,\n"
    "sho1,3,1,2,山田花子,hanako@ezweb.ne.jp,\n"
    "sho1,3,2,1,佐藤次郎,jiro@softbank.ne.jp,sho1見守り\n"
    "sho1,4,1,1,鈴木一郎,ichiro@example.jp,\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp,sho2見守り\n"
    "sho2,5,1,1,高橋四郎,shiro@example.jp,\n"
)


@dataclass
class World:
    """Ids of what the fixture made, by name."""

    settings: Settings
    clock: FakeClock
    api: StaffApi
    base_url: str
    orgs: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    async def login(self, login: str, password: str = PASSWORD, **extra: Any) -> str:
        async with self.client() as c:
            r = await c.post(
                "/api/staff/login", json={"login": login, "password": password, **extra}
            )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.api.staff.pool.fetchval(sql, *args))


async def _populate(people: People, w: World) -> None:
    for kind, code, name in (
        (OrgKind.BOARD, "city", "みどり市教育委員会"),
        (OrgKind.ELEMENTARY, "sho1", "第一小学校"),
        (OrgKind.ELEMENTARY, "sho2", "第二小学校"),
    ):
        w.orgs[code] = (await add_organisation(people, kind, code, name)).id
    # The From addresses each may send as (engine/staff/senders.py); the first is the default.
    for code, addresses in SENDERS.items():
        for address in addresses:
            await add_sender(people.pool, w.orgs[code], address, "", UNSIGNED_OK)
    for school in ("sho1", "sho2"):
        g = await add_group(people, f"{school}見守り", school, "volunteers")
        w.groups[f"{school}見守り"] = g.id
    w.groups["city全体"] = (await add_group(people, "市全体")).id
    plan = await plan_import(people, parse_rows(ROSTER.encode("utf-8")))
    assert plan.errors == []
    await write_import(people, plan, True)
    year = await current_year(people.pool, people.clock.now(), create=False)
    for school, grade, cls in (("sho1", 3, "1"), ("sho1", 3, "2"), ("sho1", 4, "1"),
                               ("sho2", 3, "1")):
        org = await find_organisation(people.pool, school)
        w.classes[f"{school}-{grade}-{cls}"] = await find_class(people.pool, org, grade, cls, year)
        w.grades[f"{school}-{grade}"] = await find_grade(people.pool, org, grade, year)


async def new_world(settings: Settings, clock: FakeClock, api: StaffApi, base_url: str) -> World:
    """The board, its two schools, their people and staff of each role, served at ``base_url``."""
    w = World(settings, clock, api, base_url)
    await _populate(api.people, w)
    await _add_staff(w)
    return w


async def _add_staff(w: World) -> None:
    st = w.api.staff
    for login, role, org, classes, groups in (
        ("board", Role.BOARD, "city", (), ()),
        ("admin1", Role.SCHOOL, "sho1", (), ()),
        ("admin2", Role.SCHOOL, "sho2", (), ()),
        ("teacher31", Role.TEACHER, "sho1", ("sho1-3-1",), ("sho1見守り",)),
    ):
        m = await accounts.add(st, accounts.NewStaff(
            login, f"{login} さん", role, w.orgs[org], PASSWORD,
            tuple(w.classes[c] for c in classes), tuple(w.groups[g] for g in groups),
        ))
        w.staff[login] = m.id


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    settings = make_settings(
        db_url, people={"key": new_key_text()},
        staff={"max_failures": 3, "session_ttl": 3600.0, "lockout_time": 900.0},
    )
    clock = FakeClock(datetime.now(UTC))
    engine = await Engine.open(settings, clock)
    api = await StaffApi.open(engine.pool, settings, clock)
    # Broadcasts asking for reads or answers need a public URL for their links
    # (engine.twoway.check_way_back); the API's own URLs stay paths (api.public_url unset).
    api = replace(api, staff=replace(api.staff, public_url="https://mail.city.example.jp"))
    app = FastAPI(title="mamoru staff API (test)")
    mount_staff(app, api)
    try:
        async with served(app) as base_url:
            w = await new_world(settings, clock, api, base_url)
            yield w
    finally:
        await engine.close()
