"""Helpers for the inbound tests: an engine with an inbound server, DSNs, SMTP sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
from sinks import free_port
from support import make_settings

from engine.delivery.context import Engine
from engine.message import verp
from engine.queue import NewBroadcast
from inbound import InboundServer


@asynccontextmanager
async def engine_with_inbound(
    db_url: str, inbound: dict[str, Any] | None = None, **sections: dict[str, Any]
) -> AsyncIterator[tuple[Engine, InboundServer]]:
    """An engine on the test database and its inbound server on a free loopback port."""
    values: dict[str, Any] = {"listen": f"127.0.0.1:{free_port()}", "hostname": "mx.test"}
    values.update(inbound or {})
    eng = await Engine.open(make_settings(db_url, inbound=values, **sections))
    try:
        server = InboundServer(eng.settings, eng.pool, await eng.verp_secret(), eng.clock)
        async with server:
            yield eng, server
    finally:
        await eng.close()


async def enqueue(eng: Engine, recipients: list[str]) -> int:
    b = NewBroadcast(
        sender="kyouiku@city.example.jp",
        subject="【緊急】不審者情報",
        body="本日15時頃、学校付近で不審者が目撃されました。\n",
        recipients=recipients,
    )
    return await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)


async def delivered_ids(eng: Engine, recipients: list[str]) -> dict[str, int]:
    """Enqueue and mark delivered by hand (as if the runner had sent them): recipient -> id."""
    bid = await enqueue(eng, recipients)
    await eng.pool.execute(
        "UPDATE deliveries SET state = 'delivered', attempts = 1, last_code = 250, "
        "finished_at = now() WHERE broadcast_id = $1",
        bid,
    )
    return {r["recipient"]: r["id"] for r in await eng.queue.deliveries_of(bid)}


async def verp_of(eng: Engine, delivery_id: int) -> str:
    return verp.return_path(await eng.verp_secret(), delivery_id, "city.example.jp")


def make_dsn(
    to: str,
    recipient: str,
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    action: str = "failed",
) -> bytes:
    """An RFC 3464 multipart/report as Postfix writes it."""
    boundary = "B0UND4RY.dsn"
    diag = diagnostic.format(r=recipient)
    text = f"""From: MAILER-DAEMON@mx.example.jp (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Sun, 22 Nov 2026 10:00:00 +0900
Message-ID: <dsn.1@mx.example.jp>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.jp.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.jp said: {diag}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.jp
Arrival-Date: Sun, 22 Nov 2026 09:59:58 +0900

Original-Recipient: rfc822;{recipient}
Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.jp
Diagnostic-Code: smtp; {diag}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: kyouiku@city.example.jp
To: {recipient}
Subject: =?utf-8?b?44CQ57eK5oCl44CR?=

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("ascii")


async def smtp_send(
    server: InboundServer, mail_from: str, rcpts: list[str], data: bytes, **kw: Any
) -> tuple[int, str]:
    """One SMTP session to the inbound server; returns the final reply (code, text)."""
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=10, **kw)
    await client.connect()
    try:
        errors, message = await client.sendmail(mail_from, rcpts, data)
        assert not errors, errors
        return 250, message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        return first.code, first.message
    finally:
        if client.is_connected:
            client.close()


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout=5)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)
