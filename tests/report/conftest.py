"""A known month for the monthly report and the disposal record (issue 23): the board "city"
with sho1 and sho2, a second board "town" with tsho, broadcasts in November 2026 (Japan time)
whose deliveries finished at fixed times, failures, registrations and a leaver, blocks
published by a runner's shaping snapshots, heartbeats with a gap, audit entries and backups.
Every figure the tests expect follows from the numbers written here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from support import make_settings

from engine.delivery import shaping_state
from engine.delivery.context import Engine
from engine.people import OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.clock import JST, FakeClock
from engine.platform.config import Settings
from engine.queue import NewBroadcast, liveness
from engine.staff import audit
from engine.staff.audit_keys import load_audit_key
from engine.staff.backup import BACKUP_ACTION
from engine.staff.models import CLI_PRINCIPAL
from engine.throttle import SiteState

ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1\n"
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp\n"
    "sho1,3,1,2,山田花子,hanako@ezweb.ne.jp\n"
    "sho1,3,2,1,佐藤次郎,jiro@softbank.ne.jp\n"
    "sho1,4,1,1,鈴木一郎,ichiro@example.jp\n"
    "sho2,3,1,1,田中三郎,saburo@example.jp\n"
    "tsho,2,1,1,町田一郎,machida@town.example.jp\n"
)
IMPORTED = datetime(2026, 10, 15, 9, 0, tzinfo=JST)
# Broadcast A: sho1, 緊急; 20 delivered 1..20 s after it, two unknown users, one mailbox full.
A_AT = datetime(2026, 11, 5, 8, 0, tzinfo=JST)
# Broadcast B: the command line's, お知らせ; four delivered 1, 2, 3, 4 minutes after.
B_AT = datetime(2026, 11, 20, 10, 0, tzinfo=JST)
# Broadcast T: town's school, in November too; O: sho1 in October (outside the month).
T_AT = datetime(2026, 11, 12, 7, 30, tzinfo=JST)
O_AT = datetime(2026, 10, 30, 12, 0, tzinfo=JST)
# Heartbeats: r1 from 23:50 to 23:55, r3 overlapping it, nothing until 23:58, then r2 past
# midnight: of the 600 s from the first beat to the month's end, 420 s were up.
LAST_DAY = datetime(2026, 11, 30, 23, 50, tzinfo=JST)
AFTER = datetime(2026, 12, 5, 9, 0, tzinfo=JST)


@dataclass
class Month:
    engine: Engine
    people: People
    clock: FakeClock
    settings: Settings
    key: bytes
    broadcasts: dict[str, int]


def _set(clock: FakeClock, at: datetime) -> None:
    clock.advance((at - clock.now()).total_seconds())


def _site(site: str, blocks: int, suspensions: int, reason: str = "") -> SiteState:
    return SiteState(
        source="192.0.2.10", site=site, profile=site, rate=5.0, floor=1.0, ceiling=50.0,
        connections_in_use=0, connections_allowed=2, max_connections=4, suspended_until=None,
        suspensions=suspensions, cuts=0, sent=10, delivered=9, deferred=1, throttled=0,
        refused=0, failed=0, waiting=0, warmup_sent_today=0, warmup_limit_today=None,
        blocks=blocks, block_reason=reason,
    )


async def _broadcast(m: Month, name: str, at: datetime, recipients: list[str], category: str,
                     owner: str | None) -> int:
    _set(m.clock, at)  # the send time is "now" when it is stored
    bid = await m.engine.queue.enqueue(
        NewBroadcast("school@example.jp", f"{name} のお知らせ", "本文\n", recipients), at, 86400
    )
    pool = m.engine.pool
    await pool.execute("UPDATE broadcasts SET category = $2, created_at = $3 WHERE id = $1",
                       bid, category, at)
    if owner is not None:
        await pool.execute(
            "INSERT INTO broadcast_owners (broadcast_id, organisation_id, created_at) "
            "SELECT $1, id, $3 FROM organisations WHERE code = $2", bid, owner, at)
    m.broadcasts[name] = bid
    return bid


async def _finish(m: Month, bid: int, seconds: list[float], failed: dict[str, str]) -> None:
    """Deliveries of ``bid`` in id order: the first ones delivered after ``seconds``, then the
    failed ones with the categories given (by recipient order)."""
    pool = m.engine.pool
    ids = [r["id"] for r in await pool.fetch(
        "SELECT id FROM deliveries WHERE broadcast_id = $1 ORDER BY id", bid)]
    send_at = await pool.fetchval("SELECT send_at FROM broadcasts WHERE id = $1", bid)
    for i, s in zip(ids, seconds, strict=False):
        await pool.execute(
            "UPDATE deliveries SET state = 'delivered', finished_at = $2, lease_owner = NULL "
            "WHERE id = $1", i, send_at + timedelta(seconds=s))
    for i, category in zip(ids[len(seconds):], failed.values(), strict=True):
        await pool.execute(
            "UPDATE deliveries SET state = 'failed', category = $2, reason = 'x', "
            "finished_at = $3 WHERE id = $1", i, category, send_at + timedelta(minutes=5))


async def build_month(m: Month) -> None:
    people, pool = m.people, m.engine.pool
    _set(m.clock, IMPORTED)
    for kind, code, name, board in (
        (OrgKind.BOARD, "city", "みどり市教育委員会", None),
        (OrgKind.ELEMENTARY, "sho1", "第一小学校", "city"),
        (OrgKind.ELEMENTARY, "sho2", "第二小学校", "city"),
        (OrgKind.BOARD, "town", "あおば町教育委員会", None),
        (OrgKind.ELEMENTARY, "tsho", "あおば小学校", "town"),
    ):
        await add_organisation(people, kind, code, name, board=board)
    plan = await plan_import(people, parse_rows(ROSTER.encode("utf-8")))
    assert plan.errors == []
    await write_import(people, plan, True)
    # sho1 in November: taro's guardian confirmed on the 3rd, hanako's never did, jiro left
    # the school on the 25th; ichiro's confirmed in October.
    # Accounts are numbered in the roster's order (one COPY); each has one contact.
    accounts = [r["id"] for r in await pool.fetch("SELECT id FROM accounts ORDER BY id")]
    contact_of = {
        r["account_id"]: r["contact_id"]
        for r in await pool.fetch("SELECT account_id, contact_id FROM contact_accounts")
    }
    taro, hanako, jiro = accounts[:3]
    await pool.execute("UPDATE contacts SET confirmed_at = $2 WHERE id = $1", contact_of[taro],
                       datetime(2026, 11, 3, 19, 0, tzinfo=JST))
    await pool.execute("UPDATE contacts SET confirmed_at = NULL WHERE id = $1",
                       contact_of[hanako])
    await pool.execute(
        "UPDATE accounts SET state = 'closed', closed_reason = 'transferred', closed_at = $2 "
        "WHERE id = $1", jiro, datetime(2026, 11, 25, 15, 0, tzinfo=JST))

    a = await _broadcast(m, "A", A_AT, [f"a{i}@example.jp" for i in range(23)], "emergency",
                         "sho1")
    await _finish(m, a, [float(s) for s in range(1, 21)],
                  {"x": "unknown_user", "y": "unknown_user", "z": "mailbox_full"})
    b = await _broadcast(m, "B", B_AT, [f"b{i}@example.jp" for i in range(4)], "notice", None)
    await _finish(m, b, [60.0, 120.0, 180.0, 240.0], {})
    t = await _broadcast(m, "T", T_AT, ["t0@example.jp", "t1@example.jp"], "school_event",
                         "tsho")
    await _finish(m, t, [30.0], {"x": "refused"})
    o = await _broadcast(m, "O", O_AT, ["o0@example.jp"], "notice", "sho1")
    await _finish(m, o, [], {"x": "unknown_user"})

    # docomo blocked once on the 10th, twice more and suspended once on the 11th; au in
    # October only.
    for at, states in (
        (datetime(2026, 10, 31, 12, 0, tzinfo=JST), [_site("au", 1, 0, "554 blocked")]),
        (datetime(2026, 11, 10, 9, 0, tzinfo=JST), [_site("docomo", 1, 0, "421 too many")]),
        (datetime(2026, 11, 11, 9, 0, tzinfo=JST), [_site("docomo", 3, 1, "554 rejected")]),
        (datetime(2026, 11, 11, 9, 0, 5, tzinfo=JST), [_site("docomo", 3, 1, "554 rejected")]),
    ):
        await shaping_state.publish(pool, "host1:100", states, at)

    for runner, start, stop in (
        ("host1:1", LAST_DAY, LAST_DAY + timedelta(minutes=5)),
        ("host1:3", LAST_DAY + timedelta(minutes=1), LAST_DAY + timedelta(minutes=3)),
        ("host1:2", LAST_DAY + timedelta(minutes=8), LAST_DAY + timedelta(minutes=10, seconds=5)),
    ):
        at = start
        while at <= stop:
            await liveness.heartbeat(pool, runner, at)
            at += timedelta(seconds=5)

    await audit.record(pool, m.key, datetime(2026, 11, 1, 2, 30, tzinfo=JST), CLI_PRINCIPAL,
                       BACKUP_ACTION, "mamoru-20261101-023000.backup", audit.Result.OK,
                       "size=1000 removed=0")
    await audit.record(pool, m.key, datetime(2026, 11, 2, 2, 30, tzinfo=JST), CLI_PRINCIPAL,
                       BACKUP_ACTION, "", audit.Result.FAILED, "pg_dump failed")
    await audit.record(pool, m.key, datetime(2026, 10, 31, 2, 30, tzinfo=JST), CLI_PRINCIPAL,
                       BACKUP_ACTION, "mamoru-20261031-023000.backup", audit.Result.OK, "")
    _set(m.clock, AFTER)


@pytest.fixture
async def month(db_url: str) -> AsyncIterator[Month]:
    settings = make_settings(db_url)
    clock = FakeClock(IMPORTED)
    engine = await Engine.open(settings, clock)
    try:
        people = await People.open(engine.pool, settings.people, clock)
        key = await load_audit_key(engine.pool, settings.staff)
        m = Month(engine, people, clock, settings, key, {})
        await build_month(m)
        yield m
    finally:
        await engine.close()
