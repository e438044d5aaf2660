"""Fixtures of the security tests: the guardians' pages on a real database, reached through
httpx's ASGI transport from any client address (a phone, a network, a reverse proxy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from support import make_settings

from admin_api.app import create_app
from admin_api.site import Site, open_site
from engine.delivery.context import Engine
from engine.message.links import PAGE
from engine.people import Audience, Category, OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.clock import FakeClock
from engine.queue import NewBroadcast
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
