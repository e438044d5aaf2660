"""The issue's end-to-end: empty mail (swaks) -> link -> page -> code -> completion mail ->
a broadcast to the class arrives -> one-click unsubscribe -> the next one does not.

Everything is real and on loopback: PostgreSQL, the inbound SMTP server, the runner sending to
a recording SMTP sink, and the pages served by uvicorn the way ``mamoru serve`` starts them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from commands import ROOT, config_file
from sinks import Sink, free_port
from support import make_settings, wait_until

from cli.services import start_http
from engine.delivery.context import Engine
from engine.people import Audience, Category, OrgKind, People
from engine.people.directory import (
    add_organisation,
    current_year,
    find_class,
    find_organisation,
)
from engine.platform.sealing import new_key_text
from engine.queue import NewBroadcast
from engine.twoway import send_broadcast
from inbound import InboundServer

from .conftest import import_csv
from .registration_helpers import body_text, codes_by_name, link_in

pytestmark = pytest.mark.slow
GUARDIAN = "Taro.Yamada@docomo.ne.jp"


@asynccontextmanager
async def serving(db_url: str, sink: Sink, **people: Any) -> AsyncIterator[tuple[Engine, int]]:
    """An engine with its runner, inbound server and HTTP pages, as ``mamoru serve`` runs them;
    yields the engine and the inbound port."""
    smtp_port, http_port = free_port(), free_port()
    settings = make_settings(
        db_url,
        routing={"transport": {"*": sink.address}},
        inbound={"listen": f"127.0.0.1:{smtp_port}", "hostname": "mx.test"},
        http={"public_url": f"http://127.0.0.1:{http_port}", "listen": f"127.0.0.1:{http_port}"},
        people={"key": new_key_text(), "registration_address": "entry@city.example.jp",
                **people},
    )
    eng = await Engine.open(settings)
    try:
        inbound = InboundServer(settings, eng.pool, await eng.verp_secret(), eng.clock)
        http = await start_http(eng)
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        try:
            async with inbound:
                yield eng, smtp_port
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=15)
            await http.stop()
    finally:
        await eng.close()


async def swaks_empty_mail(port: int, sender: str, to: str) -> None:
    """An empty mail as a phone sends it: headers, no text."""
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--to", to, "--from", sender, "--server", "127.0.0.1", "--port", str(port),
        "--data", "Date: %DATE%\nTo: %TO_ADDRESS%\nFrom: %FROM_ADDRESS%\nSubject: \n\n",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, out.decode()
    assert b"<-  250 2.0.0 OK" in out, out.decode()


def mails_to(sink: Sink, address: str, subject_part: str) -> list[bytes]:
    from email.header import decode_header, make_header

    found = []
    with sink.handler.lock:
        received = list(sink.handler.received)
    for r in received:
        subject = str(make_header(decode_header(message_from_bytes(r.data)["Subject"])))
        if r.rcpt == address and subject_part in subject:
            found.append(r.data)
    return found


async def test_empty_mail_to_one_click_unsubscribe(db_url: str, sink: Sink) -> None:
    async with serving(db_url, sink) as (eng, smtp_port):
        people = await People.open(eng.pool, eng.settings.people, eng.clock)
        await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
        await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
        await import_csv(
            people,
            "sho1,3,1,1,山田一郎,,,\n"
            "sho1,3,1,2,佐藤花子,sato@example.jp,,\n",
        )
        code = (await codes_by_name(people))["山田一郎"]
        school = await find_organisation(people.pool, "sho1")
        class_id = await find_class(people.pool, school, 3, "1", await current_year(
            people.pool, eng.clock.now()))

        # 1. An empty mail to the school's registration address, with a real SMTP client.
        await swaks_empty_mail(smtp_port, GUARDIAN, "entry-sho1@city.example.jp")
        await wait_until(lambda: mails_to(sink, GUARDIAN, "【登録】"), timeout=10)
        reply = mails_to(sink, GUARDIAN, "【登録】")[0]
        link = link_in(body_text(reply), "/r/")

        async with httpx.AsyncClient(timeout=5) as client:
            # 2. The page, then the code from the child's notice.
            page = await client.get(link)
            assert page.status_code == 200 and "登録コード" in page.text
            done = await client.post(link, data={"kind": "code", "code": code})
            assert done.status_code == 200 and "登録が完了しました" in done.text
            # 3. The completion mail.
            await wait_until(lambda: mails_to(sink, GUARDIAN, "【登録完了】"), timeout=10)

            # 4. A broadcast to the class reaches the address (and the class's other family).
            async def to_class(subject: str) -> int:
                fan = await send_broadcast(
                    people, eng.queue,
                    NewBroadcast("sho1@city.example.jp", subject, "本日は短縮授業です。\n", []),
                    Audience(classes=(class_id,)), Category.SCHOOL_EVENT, 3600,
                )
                return fan.recipients

            assert await to_class("3年1組 お知らせ 1") == 2
            await wait_until(lambda: mails_to(sink, GUARDIAN, "お知らせ 1"), timeout=10)
            notice = message_from_bytes(mails_to(sink, GUARDIAN, "お知らせ 1")[0])
            assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            url, mailto = (v.strip().strip("<>") for v in str(notice["List-Unsubscribe"])
                           .split(","))
            assert mailto.startswith("mailto:u-")

            # 5. One-click unsubscribe, as a mail client posts it: no cookie, no login.
            r = await client.post(url, content=b"List-Unsubscribe=One-Click",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200 and "配信を停止しました" in r.text

        # 6. The next broadcast to the class does not reach the address; it still reaches
        # the other family, so it was sent.
        assert await to_class("3年1組 お知らせ 2") == 1
        await wait_until(lambda: mails_to(sink, "sato@example.jp", "お知らせ 2"), timeout=10)
        assert mails_to(sink, GUARDIAN, "お知らせ 2") == []


async def test_serve_serves_the_pages_and_prints_their_url(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    cfg.write_text(
        cfg.read_text().replace(
            '[http]\nlisten = ""',
            f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "https://mail.example.jp"',
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )
    assert proc.stdout is not None
    banner = b""
    try:
        while b"Ctrl+C" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, f"serve ended before it was ready: {banner!r}"
            banner += line
        assert f"pages        http://127.0.0.1:{port}/".encode() in banner
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            # The banner is printed once every worker is ready, the first one's pages too.
            home = await client.get("/")
            assert home.status_code == 200 and "空メール" in home.text
            forged = await client.post("/u/1.zzzzzz.AAAAAAAAAAAAAAAAAAAAAA")
            assert forged.status_code == 400 and "このリンクは正しくありません" in forged.text
            # The staff API is served beside the pages: it answers, and refuses strangers.
            session = await client.get("/api/staff/session")
            assert session.status_code == 401, session.text
            paths = (await client.get("/openapi.json")).json()["paths"]
            assert "/api/apps/broadcasts" in paths
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
