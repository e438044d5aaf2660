"""The empty-mail desks (registration, report address) through the real inbound SMTP server:
limited per sender and overall, answered at normal priority, never as emergency mail."""

from __future__ import annotations

from datetime import time
from typing import Any

from inbound_mail.inbound_helpers import engine_with_inbound, smtp_send
from support import opened_rows

from engine.delivery.context import Engine
from engine.people import OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.queue import Priority
from engine.twoway import set_report_settings

EMPTY = b"Subject: \r\n\r\n"
LIMITS = {"desk_per_minute": 5, "desk_per_sender_hour": 2}
SECTIONS: dict[str, Any] = {
    "http": {"public_url": "https://mail.city.example.jp", "listen": ""},
    "people": {"registration_address": "entry@city.example.jp",
               "report_address": "report@city.example.jp"},
}


async def answers(eng: Engine) -> list[tuple[str, int]]:
    """(recipient, priority) of every mail the desks enqueued."""
    rows = await opened_rows(
        eng.pool, eng.queue.sealer,
        "SELECT d.recipient_sealed, b.priority FROM deliveries d "
        "JOIN broadcasts b ON b.id = d.broadcast_id ORDER BY d.id",
    )
    return [(r["recipient"], r["priority"]) for r in rows]


async def test_forty_forged_senders_get_only_the_desks_minute(db_url: str) -> None:
    async with engine_with_inbound(db_url, LIMITS, **SECTIONS) as (eng, server):
        for i in range(40):
            code, _ = await smtp_send(server, f"victim{i}@docomo.ne.jp",
                                      ["entry@city.example.jp"], EMPTY)
            assert code == 250  # accepted (saying "no" would tell who is limited), not answered
        sent = await answers(eng)
        assert len(sent) == LIMITS["desk_per_minute"]
        assert {p for _, p in sent} == {Priority.NORMAL}
        assert await eng.pool.fetchval("SELECT count(*) FROM registration_requests") == 5


async def test_one_sender_is_answered_a_few_times_an_hour(db_url: str) -> None:
    async with engine_with_inbound(db_url, LIMITS, **SECTIONS) as (eng, server):
        for _ in range(4):
            await smtp_send(server, "flood@example.jp", ["entry@city.example.jp"], EMPTY)
        # Another sender is not held back by the first one's repeats.
        await smtp_send(server, "other@example.jp", ["entry@city.example.jp"], EMPTY)
        assert [r for r, _ in await answers(eng)] == ["flood@example.jp"] * 2 + [
            "other@example.jp"]


async def test_the_report_desk_is_limited_and_not_urgent(db_url: str) -> None:
    async with engine_with_inbound(db_url, LIMITS, **SECTIONS) as (eng, server):
        people = await People.open(eng.pool, eng.settings.people, eng.clock)
        await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
        school = await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
        plan = await plan_import(people, parse_rows(
            "学校,学年,組,番号,氏名,連絡先1\nsho1,3,1,1,山田太郎,papa@docomo.ne.jp\n".encode()))
        await write_import(people, plan, True)
        await set_report_settings(people, school.id, time(0, 0), time(23, 59), ["発熱"])
        for _ in range(4):
            await smtp_send(server, "papa@docomo.ne.jp", ["report@city.example.jp"], EMPTY)
        assert await answers(eng) == [("papa@docomo.ne.jp", Priority.NORMAL)] * 2
