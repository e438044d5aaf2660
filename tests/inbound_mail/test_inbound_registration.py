"""Empty mail to the registration address: who gets a link, who gets nothing."""

from __future__ import annotations

from typing import Any

from inbound_helpers import delivered_ids, engine_with_inbound, smtp_send
from support import opened_rows

from engine.bounce.suppression import Suppressions
from engine.delivery.context import Engine
from engine.people.registration import MAX_REQUESTS_PER_HOUR
from engine.platform.sealing import new_key_text
from engine.queue import Priority

EMPTY = b"Subject: \r\n\r\n"


def registration(**people: Any) -> dict[str, Any]:
    return {
        "http": {"public_url": "https://mail.city.example.jp", "listen": ""},
        "people": {"key": new_key_text(), "registration_address": "entry@city.example.jp",
                   **people},
    }


async def queued(eng: Engine) -> list[tuple[str, str, int]]:
    """(recipient, body, priority) of every delivery stored, oldest first."""
    rows = await opened_rows(
        eng.pool, eng.queue.sealer,
        "SELECT d.recipient_sealed, b.body, b.priority FROM deliveries d "
        "JOIN broadcasts b ON b.id = d.broadcast_id ORDER BY d.id"
    )
    return [(r["recipient"], r["body"], r["priority"]) for r in rows]


async def test_an_empty_mail_is_answered_with_a_link_to_its_sender_only(db_url: str) -> None:
    async with engine_with_inbound(db_url, **registration()) as (eng, server):
        # Someone forges a guardian's address as the sender: the link goes to that mailbox,
        # where the forger cannot read it, and nothing is registered.
        code, _ = await smtp_send(server, "victim@docomo.ne.jp", ["ENTRY@City.Example.JP"], EMPTY)
        assert code == 250
        rows = await queued(eng)
        assert [r[0] for r in rows] == ["victim@docomo.ne.jp"]
        assert "https://mail.city.example.jp/r/" in rows[0][1]
        # Normal priority: claimed before bulk mail, never before an emergency (anybody can
        # make the desk answer).
        assert rows[0][2] == Priority.NORMAL
        assert await eng.pool.fetchval("SELECT count(*) FROM contacts") == 0
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
        # A school's entry address names the school; an unknown one still registers.
        for rcpt in ("entry-sho1@city.example.jp", "entry-nosuch@city.example.jp"):
            assert (await smtp_send(server, "hogosha@au.com", [rcpt], EMPTY))[0] == 250
        assert len(await queued(eng)) == 3
        # Other local parts of the domain are not ours to take.
        code, _ = await smtp_send(server, "x@example.jp", ["entryx@city.example.jp"], EMPTY)
        assert code == 550


async def test_suppressed_null_and_too_frequent_senders_get_no_reply(db_url: str) -> None:
    async with engine_with_inbound(db_url, **registration()) as (eng, server):
        await Suppressions(eng.pool, eng.queue.sealer).add("Bounced@docomo.ne.jp", "unknown_user")
        assert (await smtp_send(server, "bounced@docomo.ne.jp", ["entry@city.example.jp"],
                                EMPTY))[0] == 250
        assert (await smtp_send(server, "", ["entry@city.example.jp"], EMPTY))[0] == 250
        assert await queued(eng) == []
        # Listed only by its own one-click unsubscribe: registering again is its own choice.
        await Suppressions(eng.pool, eng.queue.sealer).add("changed@au.com", "unsubscribed")
        await smtp_send(server, "changed@au.com", ["entry@city.example.jp"], EMPTY)
        assert [r[0] for r in await queued(eng)] == ["changed@au.com"]
        per_hour = min(MAX_REQUESTS_PER_HOUR, eng.settings.inbound.desk_per_sender_hour)
        for _ in range(per_hour + 2):
            await smtp_send(server, "flood@example.jp", ["entry@city.example.jp"], EMPTY)
        assert len(await queued(eng)) == 1 + per_hour


async def test_without_a_registration_address_the_address_is_refused(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        code, _ = await smtp_send(server, "a@example.jp", ["entry@city.example.jp"], EMPTY)
        assert code == 550
        assert await queued(eng) == []


async def test_mail_to_the_list_unsubscribe_mailto_unsubscribes_its_recipient(
    db_url: str,
) -> None:
    from engine.message import verp
    from engine.people import People
    from engine.people.contacts import add_contact

    async with engine_with_inbound(db_url, **registration()) as (eng, server):
        people = await People.open(eng.pool, eng.settings.people, eng.clock)
        await add_contact(people, "leaving@docomo.ne.jp", confirmed=True)
        ids = await delivered_ids(eng, ["leaving@docomo.ne.jp", "plain@example.jp"])
        secret = await eng.verp_secret()
        forged = verp.unsubscribe_address(b"another-secret-0123456789", ids["plain@example.jp"],
                                          "city.example.jp")
        assert (await smtp_send(server, "x@example.jp", [forged], EMPTY))[0] == 550
        # A bounce address is no unsubscribe address, nor the other way round.
        bounce = verp.return_path(secret, ids["plain@example.jp"], "city.example.jp")
        assert verp.unsubscribe_id_of(secret, bounce) is None
        for address, delivery in ids.items():
            mailto = verp.unsubscribe_address(secret, delivery, "city.example.jp")
            assert (await smtp_send(server, address, [mailto.upper()], EMPTY))[0] == 250
        state = await eng.pool.fetchval("SELECT state FROM contacts")
        assert state == "left"
        listed = await opened_rows(
            eng.pool, eng.queue.sealer, "SELECT address_sealed, reason FROM suppressions"
        )
        assert [(r["address"], r["reason"]) for r in listed] == [
            ("plain@example.jp", "unsubscribed")
        ]
        # Asked by mail, and the list says so (not "one-click (RFC 8058)", which is the POST).
        note = await eng.pool.fetchval("SELECT note FROM suppressions")
        assert "メール" in note and "mail" in note and "8058" not in note
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
