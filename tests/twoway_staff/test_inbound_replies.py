"""Replies through the real inbound SMTP server: kept sealed with their broadcast, answered
once with the personal page link, never answered when automatic or a reply to the answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import aiosmtplib
from sinks import free_port
from support import make_settings, opened_rows

from engine.delivery.context import Engine
from engine.message.compose import build_template
from engine.message.links import PAGE, LinkSigner
from engine.people import People
from engine.people.contacts import add_contact
from engine.platform.sealing import new_key_text
from engine.queue import NewBroadcast
from engine.twoway import replies_of
from inbound import InboundServer

SCHOOL = "sho1@city.example.jp"
GUARDIAN = "hogosha@docomo.ne.jp"
PUBLIC = "https://mail.city.example.jp"


@asynccontextmanager
async def inbound(db_url: str) -> AsyncIterator[tuple[Engine, InboundServer]]:
    eng = await Engine.open(make_settings(
        db_url, inbound={"listen": f"127.0.0.1:{free_port()}", "hostname": "mx.test",
                         "service_addresses": [SCHOOL]},
        http={"public_url": PUBLIC, "listen": ""}, people={"key": new_key_text()},
    ))
    try:
        server = InboundServer(eng.settings, eng.pool, await eng.verp_secret(), eng.clock)
        async with server:
            yield eng, server
    finally:
        await eng.close()


async def delivered(eng: Engine, sender: str = SCHOOL) -> tuple[int, int]:
    """(broadcast, delivery) of a mail to the guardian, delivered."""
    b = await eng.queue.enqueue(NewBroadcast(sender=sender, subject="遠足のお知らせ",
                                             body="来週は遠足です。\n", recipients=[GUARDIAN]),
                                eng.clock.now(), 3600)
    await eng.pool.execute("UPDATE deliveries SET state = 'delivered', finished_at = now() "
                           "WHERE broadcast_id = $1", b)
    d: int = await eng.pool.fetchval("SELECT id FROM deliveries WHERE broadcast_id = $1", b)
    return b, d


async def message_id(eng: Engine, broadcast_id: int, delivery_id: int) -> str:
    content = (await eng.queue.broadcast_contents([broadcast_id]))[broadcast_id]
    template = build_template(content, eng.clock, "city.example.jp",
                              secret=await eng.verp_secret())
    return template.message_id(delivery_id)


async def send(server: InboundServer, answering: str | None, text: str = "欠席します。",
               mail_from: str = GUARDIAN, **headers: str) -> None:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = SCHOOL
    msg["Subject"] = "Re: 遠足のお知らせ"
    if answering:
        msg["In-Reply-To"] = answering
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    await aiosmtplib.send(msg, hostname=server.host, port=server.port, sender=mail_from,
                          recipients=[SCHOOL], timeout=10)


async def answers(eng: Engine) -> list[tuple[str, str]]:
    rows = await opened_rows(
        eng.pool, eng.queue.sealer,
        "SELECT d.recipient_sealed, b.body FROM deliveries d JOIN broadcasts b "
        "ON b.id = d.broadcast_id WHERE b.subject LIKE '【自動応答】%' ORDER BY d.id")
    return [(r["recipient"], r["body"]) for r in rows]


async def test_a_reply_is_kept_and_answered_once_with_the_personal_page(db_url: str) -> None:
    async with inbound(db_url) as (eng, server):
        people = await People.open(eng.pool, eng.settings.people, eng.clock)
        await add_contact(people, GUARDIAN, confirmed=True)
        b, d = await delivered(eng)
        mid = await message_id(eng, b, d)
        await send(server, mid, "<b>明日は欠席します。</b>\n山田")
        # From another address (a PC): kept, marked; the answer still goes to the phone.
        await send(server, mid, "PC から失礼します", mail_from="yamada@example.com")
        replies = await replies_of(people, b)
        assert [(r.sender, r.from_recipient, r.body.strip()) for r in replies] == [
            (GUARDIAN, True, "<b>明日は欠席します。</b>\n山田"),
            ("yamada@example.com", False, "PC から失礼します"),
        ]
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
        [(to, body)] = await answers(eng)
        assert to == GUARDIAN
        m = re.search(re.escape(PUBLIC) + r"/m/([0-9a-z._A-Z-]+)", body)
        assert m is not None
        signer = LinkSigner(await eng.verp_secret())
        assert signer.verify(PAGE, m.group(1), eng.clock.now()) == d


async def test_automatic_mail_and_replies_to_the_answer_are_not_answered(
    db_url: str,
) -> None:
    async with inbound(db_url) as (eng, server):
        people = await People.open(eng.pool, eng.settings.people, eng.clock)
        b, d = await delivered(eng)
        mid = await message_id(eng, b, d)
        await send(server, mid, "不在です", Auto_Submitted="auto-replied")
        await send(server, mid, "list", Precedence="bulk")
        await send(server, mid, "", mail_from="")
        assert await replies_of(people, b) == []
        # Kept as service mail for a person to read, as before.
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 3
        assert await answers(eng) == []
        await send(server, mid, "了解しました")
        [_] = await answers(eng)
        # The guardian answers the automatic answer: no answer to that, no loop.
        answer_b, answer_d = (await eng.pool.fetchrow(
            "SELECT b.id, d.id AS d FROM broadcasts b JOIN deliveries d ON d.broadcast_id = b.id "
            "WHERE b.subject LIKE '【自動応答】%'"))
        await send(server, await message_id(eng, answer_b, answer_d), "ありがとうございます")
        assert len(await answers(eng)) == 1
        # ... and it is kept with the broadcast the guardian meant, not with the answer.
        assert [r.body.strip() for r in await replies_of(people, b)] == [
            "了解しました", "ありがとうございます"]
        assert await replies_of(people, answer_b) == []
        # A made-up Message-ID is no reply of ours: service mail.
        await send(server, "<mamoru.1.2.aaaaaaaaaaaaaaaa@city.example.jp>", "?")
        await send(server, None, "ふつうのメール")
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 5
