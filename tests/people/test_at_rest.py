"""Addresses at rest beyond the people tables: the queue, the suppression list, kept mails.

A dump of every table (and the table files themselves) must not reveal a guardian's address,
whatever path stored it: fan-out to an audience, a receiver's reply quoting the recipient, a
suppression, soft failures, a bounce and a mail to a service address. Rows written in plaintext
before migration 016 are sealed when mamoru starts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from conftest import scratch_database
from support import make_settings

from engine.bounce.received import BounceRow, insert_bounces, insert_messages
from engine.bounce.suppression import FailedVerdict, Suppressions
from engine.delivery.context import Engine
from engine.people import Audience, Category, People
from engine.people.accounts import purge
from engine.people.directory import find_organisation
from engine.platform.db import load_migrations
from engine.queue import AttemptResult, NewBroadcast, Outcome
from engine.twoway import link_deliveries, send_broadcast

from .conftest import import_csv

ROWS = (
    "sho1,3,1,1,三年生,Mama.Sato@docomo.ne.jp,papa.sato@ezweb.ne.jp\n"
    "sho1,3,1,2,三年生二,suzuki-k@softbank.ne.jp,\n"
)
ADDRESSES = ["Mama.Sato@docomo.ne.jp", "papa.sato@ezweb.ne.jp", "suzuki-k@softbank.ne.jp"]
BY_HAND = "hand.given@example.jp"

QUEUE_TABLES = (
    "deliveries", "delivery_attempts", "suppressions", "soft_failures", "bounces",
    "inbound_messages", "delivery_contacts",
)


def _hidden(dump: bytes | str, table: str) -> None:
    text = dump if isinstance(dump, str) else None
    for address in [*ADDRESSES, BY_HAND]:
        for form in (address, address.lower()):
            if text is not None:
                assert form not in text, (table, form)
                assert form.encode().hex() not in text, (table, form)
            else:
                assert form.encode() not in dump, (table, form)


async def test_queue_suppressions_and_kept_mails_hold_no_plaintext_address(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS)
    school = await find_organisation(schools.pool, "sho1")
    message = NewBroadcast("info@city.example.jp", "お知らせ", "本文\n", [BY_HAND])
    fan = await send_broadcast(
        schools, engine.queue, message, Audience(schools=(school.id,)), Category.NOTICE, 3600
    )
    assert fan.recipients == 4
    # Fan-out joins deliveries to their contacts by hash alone: the three guardians, not the
    # hand-given address; linking again finds nothing missing.
    assert await engine.pool.fetchval("SELECT count(*) FROM delivery_contacts") == 3
    assert await link_deliveries(engine.pool, schools, fan.broadcast_id) == 0
    # A receiver quotes the address in its reply: the reply is stored shortened.
    # The people's clock is 10:00 JST on a school day, the broadcast's send-at.
    now = schools.clock.now()
    claimed = await engine.queue.claim("t", 10, now, 60)
    assert sorted(c.recipient for c in claimed) == sorted([*ADDRESSES, BY_HAND])
    await engine.queue.record("t", [
        AttemptResult(
            c.id, Outcome.FAILED, now, 550, "5.1.1",
            f"550 5.1.1 <{c.recipient}>: Recipient address rejected: User unknown",
            "mx.example.jp", "userunknown", category="unknown_user",
        )
        for c in claimed
    ])
    stored = {r["recipient"]: r for r in await engine.queue.deliveries_of(fan.broadcast_id)}
    assert "<Ma…@docomo.ne.jp>" in stored["Mama.Sato@docomo.ne.jp"]["last_text"]
    suppressions = Suppressions(engine.pool, engine.queue.sealer, clock=engine.clock)
    await suppressions.add("Suzuki-K@softbank.ne.jp", "operator")
    await suppressions.record_verdicts([
        FailedVerdict("papa.sato@ezweb.ne.jp", claimed[0].id, "mailboxfull", "mailbox_full",
                      False),
        FailedVerdict(BY_HAND, claimed[1].id, "userunknown", "unknown_user", True),
    ])
    listed = {s.address for s in await suppressions.list()}
    assert listed == {"Suzuki-K@softbank.ne.jp", BY_HAND}
    raw = (f"From: MAILER-DAEMON\r\n\r\n<{ADDRESSES[0]}>: user unknown\r\n").encode()
    async with engine.pool.acquire() as conn:
        await insert_bounces(conn, engine.queue.sealer, now, "", raw, [
            BounceRow("b-1@bounce.example.jp", claimed[0].id, "dsn", ADDRESSES[0],
                      "userunknown", "unknown_user", True, 550, "5.1.1", "failed",
                      f"smtp; 550 <{ADDRESSES[0]}> unknown", True),
        ])
        await insert_messages(conn, engine.queue.sealer, now, ADDRESSES[1],
                              f"From: {ADDRESSES[1]}\r\n\r\n登録\r\n".encode(),
                              ["entry@city.example.jp"])
    for table in QUEUE_TABLES:
        rows = await engine.pool.fetch(f"SELECT t::text AS row FROM {table} t")
        assert rows, table
        _hidden("\n".join(r["row"] for r in rows), table)
    await engine.pool.execute("CHECKPOINT")
    data_dir = Path(await engine.pool.fetchval("SHOW data_directory"))
    if not os.access(data_dir, os.R_OK):
        pytest.skip("the test server's files are not readable here")
    for table in QUEUE_TABLES:
        path = await engine.pool.fetchval("SELECT pg_relation_filepath($1::regclass)", table)
        _hidden((data_dir / path).read_bytes(), table)


@pytest.fixture
async def before_016(server_url: str) -> AsyncIterator[str]:
    """A database at migration 015 holding plaintext addresses, as older versions stored."""
    async with scratch_database(server_url, "mamoru_old", template=None) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE mamoru_migrations (version integer PRIMARY KEY, name text NOT "
                "NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for mig in load_migrations():
                if mig.version < 16:
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO mamoru_migrations (version, name) VALUES ($1, $2)",
                        mig.version, mig.name,
                    )
            bid = await conn.fetchval(
                "INSERT INTO broadcasts (sender, subject, body, priority, send_at, "
                "recipient_count) VALUES ('s@example.jp', '件名', '本文', 1, now(), 2) "
                "RETURNING id"
            )
            for address, state, text in (
                ("Old.Queued@docomo.ne.jp", "queued", None),
                ("old.failed@au.com", "failed", "550 <old.failed@au.com> unknown"),
            ):
                await conn.execute(
                    "INSERT INTO deliveries (broadcast_id, recipient, domain, priority, state, "
                    "next_attempt_at, expires_at, last_text) VALUES ($1, $2, "
                    "split_part($2, '@', 2), 1, $3, now(), now() + interval '1 hour', $4)",
                    bid, address, state, text,
                )
            await conn.execute(
                "INSERT INTO suppressions (address, reason, category, source) VALUES "
                "('Old.Failed@au.com', 'userunknown', 'unknown_user', 'bounce');"
                "INSERT INTO soft_failures (address, delivery_id, reason, category, failed_at) "
                "VALUES ('soft.one@au.com', 1, 'mailboxfull', 'mailbox_full', now());"
                "INSERT INTO bounces (received_at, mail_from, rcpt, delivery_id, kind, "
                "recipient, classified, diagnostic, raw) VALUES (now(), '', 'b-2', 2, 'dsn', "
                "'old.failed@au.com', true, '550 <old.failed@au.com>', "
                "convert_to('Final-Recipient: rfc822; old.failed@au.com', 'UTF8'));"
                "INSERT INTO inbound_messages (received_at, mail_from, rcpt, size, raw) VALUES "
                "(now(), 'reg.person@docomo.ne.jp', 'entry@city.example.jp', 5, 'empty')"
            )
        finally:
            await conn.close()
        yield url


async def test_rows_stored_before_sealing_are_sealed_at_start(before_016: str) -> None:
    eng = await Engine.open(make_settings(before_016))
    try:
        tables = {}
        for table in ("deliveries", "suppressions", "soft_failures", "bounces",
                      "inbound_messages"):
            rows = await eng.pool.fetch(f"SELECT t::text AS row FROM {table} t")
            tables[table] = "\n".join(r["row"] for r in rows)
        bid = await eng.pool.fetchval("SELECT id FROM broadcasts")
        rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}
        listed = await Suppressions(eng.pool, eng.queue.sealer).lookup(["OLD.failed@au.com"])
        # Every old row is still there and reads as before; the next fan-out sees the entry.
        later = await eng.queue.enqueue(
            NewBroadcast("s@example.jp", "次", "本文", ["old.failed@au.com", "new@au.com"]),
            eng.clock.now(), 3600,
        )
        states = {r["recipient"]: r["state"] for r in await eng.queue.deliveries_of(later)}
        claimed = await eng.queue.claim("t", 10, eng.clock.now() + timedelta(hours=2), 60)
    finally:
        await eng.close()
    for table, dump in tables.items():
        for secret in ("old.queued@docomo.ne.jp", "Old.Queued", "old.failed@au.com",
                       "soft.one@au.com", "reg.person@docomo.ne.jp"):
            assert secret not in dump, (table, secret)
    assert set(rows) == {"Old.Queued@docomo.ne.jp", "old.failed@au.com"}
    assert rows["old.failed@au.com"]["last_text"] == "550 <ol…@au.com> unknown"
    assert listed["OLD.failed@au.com"].address == "Old.Failed@au.com"
    assert states == {"old.failed@au.com": "failed", "new@au.com": "queued"}
    assert "Old.Queued@docomo.ne.jp" in {c.recipient for c in claimed}


async def test_purge_takes_the_addresses_out_of_the_queue_and_the_lists(
    engine: Engine, schools: People
) -> None:
    await import_csv(schools, ROWS + "sho2,4,1,1,他校,other.school@au.com,\n")
    sho1 = await find_organisation(schools.pool, "sho1")
    sho2 = await find_organisation(schools.pool, "sho2")
    message = NewBroadcast("info@city.example.jp", "お知らせ", "本文\n", [BY_HAND])
    both = await send_broadcast(
        schools, engine.queue, message, Audience(schools=(sho1.id, sho2.id)), Category.NOTICE,
        3600,
    )
    suppressions = Suppressions(engine.pool, engine.queue.sealer)
    await suppressions.add("MAMA.SATO@docomo.ne.jp", "operator")
    await suppressions.add("other.school@au.com", "operator")

    school = await purge(schools, sho1)
    after_school = {r["recipient"]: r for r in await engine.queue.deliveries_of(both.broadcast_id)}
    listed = {s.address for s in await suppressions.list()}

    everyone = await purge(schools, None)
    after_all = {r["recipient"] for r in await engine.queue.deliveries_of(both.broadcast_id)}
    left = await engine.pool.fetchval("SELECT count(*) FROM suppressions")

    assert (school.contacts, school.deliveries, school.suppressions) == (3, 3, 1)
    # Unsent deliveries of the purged addresses will not be sent; the others are untouched.
    assert after_school["(削除済み)"]["state"] == "failed"
    assert set(after_school) == {"(削除済み)", "other.school@au.com", BY_HAND}
    assert after_school["other.school@au.com"]["state"] == "queued"
    assert listed == {"other.school@au.com"}
    assert (everyone.contacts, everyone.deliveries, everyone.suppressions) == (1, 5, 1)
    assert after_all == {"(削除済み)"} and left == 0
