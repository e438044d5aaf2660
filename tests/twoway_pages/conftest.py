"""A serve for the personal pages' end-to-end tests: runner, inbound server and HTTP pages.

Everything is real and on loopback: PostgreSQL, the runner sending to a recording SMTP sink,
the inbound SMTP server and the pages served by uvicorn. All of them share one ``FakeClock``
(10:00 Japan time on a school day) that a test moves forward to pass a deadline, leave the
report hours or make reminders due; nothing waits for real time to pass.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header

import httpx
import pytest
from sinks import Sink, free_port
from support import make_settings

from admin_api.app import create_app
from admin_api.server import HttpServer
from admin_api.site import open_site
from engine.delivery.context import Engine
from engine.people import OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.clock import FakeClock
from engine.platform.sealing import new_key_text
from inbound import InboundServer

# 10:00 Japan time, Tuesday 24 November 2026.
DAYTIME = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
HEADER = "学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ\n"
# 太郎 has two guardians; 花子 and 一郎 one each; 三郎 is at another school.
ROWS = (
    "sho1,3,1,1,山田太郎,papa@docomo.ne.jp,mama@ezweb.ne.jp\n"
    "sho1,3,1,2,佐藤花子,hanako@docomo.ne.jp,\n"
    "sho1,3,2,1,鈴木一郎,ichiro@softbank.ne.jp,\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp,\n"
)


@dataclass
class Serve:
    engine: Engine
    people: People
    clock: FakeClock
    sink: Sink
    http: httpx.AsyncClient
    smtp_port: int

    def mails(self, to: str, subject_part: str = "") -> list[bytes]:
        with self.sink.handler.lock:
            received = list(self.sink.handler.received)
        return [
            r.data for r in received
            if r.rcpt == to and subject_part in subject_of(r.data)
        ]

    async def school(self, code: str) -> int:
        found: int = await self.people.pool.fetchval(
            "SELECT id FROM organisations WHERE code = $1", code
        )
        return found

    async def account(self, name: str) -> int:
        for row in await self.people.pool.fetch("SELECT id, name_sealed FROM accounts"):
            if self.people.sealer.open(row["name_sealed"], "account.name") == name:
                return int(row["id"])
        raise AssertionError(name)


def subject_of(data: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(data)["Subject"] or "")))


def body_text(data: bytes) -> str:
    payload = message_from_bytes(data).get_payload()
    assert isinstance(payload, str)
    return base64.b64decode(payload).decode("utf-8")


def link_in(data: bytes, path: str) -> str:
    """The first link under ``path`` ("/m/") in a mail, as a path the client can open."""
    m = re.search(r"https?://[^\s/]+(" + re.escape(path) + r"[0-9A-Za-z._-]+)", body_text(data))
    assert m is not None, body_text(data)
    return m.group(1)


@pytest.fixture
async def serve(db_url: str, sink: Sink) -> AsyncIterator[Serve]:
    smtp_port, http_port = free_port(), free_port()
    settings = make_settings(
        db_url,
        routing={"transport": {"*": sink.address}},
        inbound={"listen": f"127.0.0.1:{smtp_port}", "hostname": "mx.test"},
        http={"public_url": f"http://127.0.0.1:{http_port}", "listen": f"127.0.0.1:{http_port}"},
        people={"key": new_key_text(), "registration_address": "entry@city.example.jp",
                "report_address": "report@city.example.jp"},
    )
    clock = FakeClock(DAYTIME)
    eng = await Engine.open(settings, clock)
    try:
        people = await People.open(eng.pool, settings.people, clock)
        await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho2", "第二小学校")
        plan = await plan_import(people, parse_rows((HEADER + ROWS).encode()))
        assert plan.errors == []
        await write_import(people, plan, True)
        site = await open_site(settings, people, await eng.verp_secret())
        http = HttpServer(create_app(site), settings.http.listen)
        await http.start()
        inbound = InboundServer(settings, eng.pool, await eng.verp_secret(), eng.clock)
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        try:
            async with inbound, httpx.AsyncClient(
                base_url=settings.http.public_url, timeout=5
            ) as client:
                yield Serve(eng, people, clock, sink, client, smtp_port)
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=15)
            await http.stop()
    finally:
        await eng.close()
