"""A served settings page (配信の設定) for the guardians' settings tests: real PostgreSQL, the
pages on a real uvicorn, a runner delivering to a recording SMTP sink (where the completion
mails arrive), all on one FakeClock at 10:00 Japan time on a school day.

The world: a board with two schools; 第一小学校 has a PTA (not public) and a public
図書ボランティア, 第二小学校 a public PTA, the board a public 防犯メール.
山田太郎 (sho1) is in 第一小学校's PTA from the CSV, with two guardians (papa, mama);
田中三郎 (sho2) is in 第二小学校's PTA.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header

import httpx
import pytest
from sinks import Sink, free_port
from support import make_settings

from admin_api.app import create_app
from admin_api.server import HttpServer
from admin_api.site import UNSUBSCRIBE, Site, open_site
from engine.delivery.context import Engine
from engine.people import OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.audience import resolve
from engine.people.csv_import import parse_rows
from engine.people.directory import add_group, add_organisation
from engine.people.models import Audience, Category, Resolved
from engine.people.store import ADDRESS
from engine.platform.clock import FakeClock
from engine.platform.sealing import new_key_text
from engine.queue import NewBroadcast, Priority

# 10:00 Japan time, Tuesday 24 November 2026.
DAYTIME = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
CSV = (
    "学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ\n"
    "sho1,3,1,1,山田太郎,papa@docomo.ne.jp,mama@ezweb.ne.jp,PTA\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp,,PTA\n"
)
PAPA = "papa@docomo.ne.jp"
MAMA = "mama@ezweb.ne.jp"


@dataclass
class Settings:
    people: People
    site: Site
    sink: Sink
    http: httpx.AsyncClient
    base_url: str
    groups: dict[str, int]

    async def link(self, address: str = PAPA) -> str:
        """The settings page's path for ``address``, as the foot of a mail to it links it."""
        queue = self.site.queue
        bid = await queue.enqueue(
            NewBroadcast("school@city.example.jp", "お知らせ", "本文\n", [address]),
            self.people.clock.now(), 3600,
        )
        delivery = (await queue.deliveries_of(bid))[0]["id"]
        until = self.people.clock.now() + timedelta(days=30)
        return f"/u/{self.site.links.token(UNSUBSCRIBE, delivery, until)}"

    async def reached(
        self, audience: Audience, category: Category = Category.NOTICE,
        priority: Priority = Priority.NORMAL,
    ) -> Resolved:
        return await resolve(
            self.people.pool, self.people, audience, category, priority,
            self.people.clock.now(),
        )

    async def contact(self, address: str = PAPA) -> dict[str, object]:
        for r in await self.people.pool.fetch("SELECT * FROM contacts"):
            if self.people.sealer.open(r["address_sealed"], ADDRESS) == address:
                return dict(r)
        raise AssertionError(address)

    def mails(self, to: str, subject_part: str) -> list[str]:
        """Bodies of the mails the sink received for ``to`` whose subject has the part."""
        with self.sink.handler.lock:
            received = list(self.sink.handler.received)
        return [
            body_text(r.data) for r in received
            if r.rcpt == to and subject_part in subject_of(r.data)
        ]


def subject_of(data: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(data)["Subject"] or "")))


def body_text(data: bytes) -> str:
    payload = message_from_bytes(data).get_payload()
    assert isinstance(payload, str)
    return base64.b64decode(payload).decode("utf-8")


def checked_groups(html: str) -> dict[str, bool]:
    """The page's group checkboxes: label text -> checked."""
    out: dict[str, bool] = {}
    for m in re.finditer(r'<input type="checkbox" name="group" value="\d+"( checked)?> ([^<]+)<',
                         html):
        out[m.group(2).strip()] = bool(m.group(1))
    return out


@pytest.fixture
async def gs(db_url: str, sink: Sink) -> AsyncIterator[Settings]:
    http_port = free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    settings = make_settings(
        db_url,
        routing={"transport": {"*": sink.address}},
        http={"public_url": base_url, "listen": f"127.0.0.1:{http_port}"},
        people={"key": new_key_text(), "registration_address": "entry@city.example.jp"},
    )
    eng = await Engine.open(settings, FakeClock(DAYTIME))
    try:
        people = await People.open(eng.pool, settings.people, eng.clock)
        await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho2", "第二小学校")
        groups = {
            "pta1": (await add_group(people, "PTA", "sho1")).id,
            "library": (await add_group(people, "図書ボランティア", "sho1", is_public=True)).id,
            "pta2": (await add_group(people, "PTA", "sho2", is_public=True)).id,
            "safety": (await add_group(people, "防犯メール", None, is_public=True)).id,
        }
        plan = await plan_import(people, parse_rows(CSV.encode()))
        assert plan.errors == []
        await write_import(people, plan, True)
        site = await open_site(settings, people, await eng.verp_secret())
        server = HttpServer(create_app(site), settings.http.listen)
        await server.start()
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
                yield Settings(people, site, sink, client, base_url, groups)
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=15)
            await server.stop()
    finally:
        await eng.close()
