"""Audience -> deliveries: who a broadcast reaches, resolved and fanned out in one transaction.

An audience is any combination of boards, schools, grades, classes, groups and single
accounts (``Audience``). It resolves to contacts, each address once (contacts are unique by
address), then:

- a contact that left (``state = 'left'``) or is not confirmed yet is skipped, counted by
  reason (``SkipReason``) and recorded on the broadcast (``broadcasts.skipped``), and so is a
  contact that asked for emergencies only when the mail is not one (category or priority);
- a group the contact unchecked on its settings page (``contact_group_optouts``) does not
  reach it, whether it is in the group through its child or itself;
- a contact reached **only through groups** follows those groups' delivery conditions: it is
  skipped (reason ``category``) when none of them receives the broadcast's category, and, for
  non-emergency mail, waits out a night window when every group that receives the category
  keeps one the send time falls in (the earliest end wins). A contact also reached as a child's
  guardian, or through the school, grade or class, gets the mail at once: those paths have no
  conditions;
- addresses on the suppression list are left to ``Queue.enqueue``, which stores them as failed
  with reason ``suppressed`` so the operator still sees them (``suppressed_count``).

Resolution, fan-out and the broadcast's category, audience and counts are one transaction:
either the broadcast exists with all of its deliveries, or nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from engine.people.directory import groups_by_id
from engine.people.models import (
    SKIP_LABELS_JA,
    Audience,
    Category,
    Group,
    Resolved,
    SkipReason,
)
from engine.people.store import ADDRESS, People
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Priority, Queue

# Every path into the audience in one statement: accounts by board, school, grade, class or id
# (their contacts, with no group), and groups (contacts of member accounts and contacts that
# joined themselves, with the group). One row per contact, with the groups it came through.
RESOLVE_SQL = """
WITH acc AS (
    SELECT a.id FROM accounts a JOIN organisations o ON o.id = a.school_id
    WHERE a.state = 'active' AND (
        a.school_id = ANY($1::bigint[]) OR o.parent_id = ANY($1::bigint[])
        OR a.school_id = ANY($2::bigint[]) OR a.grade_id = ANY($3::bigint[])
        OR a.class_id = ANY($4::bigint[]) OR a.id = ANY($5::bigint[]))
),
t AS (
    SELECT ca.contact_id, NULL::bigint AS group_id
    FROM acc JOIN contact_accounts ca ON ca.account_id = acc.id
    UNION ALL
    SELECT ca.contact_id, ag.group_id
    FROM account_groups ag
    JOIN accounts a ON a.id = ag.account_id AND a.state = 'active'
    JOIN contact_accounts ca ON ca.account_id = ag.account_id
    WHERE ag.group_id = ANY($6::bigint[])
    UNION ALL
    SELECT cg.contact_id, cg.group_id FROM contact_groups cg WHERE cg.group_id = ANY($6::bigint[])
),
-- A group unchecked on the settings page no longer reaches that contact (migration 032).
kept AS (
    SELECT t.* FROM t WHERE t.group_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM contact_group_optouts o
        WHERE o.group_id = t.group_id AND o.contact_id = t.contact_id)
)
SELECT c.id, c.address_sealed, c.address_hash, c.state, c.confirmed_at IS NOT NULL AS confirmed,
       c.emergency_only,
       bool_or(t.group_id IS NULL) AS direct,
       array_agg(DISTINCT t.group_id) FILTER (WHERE t.group_id IS NOT NULL) AS via
FROM kept t JOIN contacts c ON c.id = t.contact_id
GROUP BY c.id
"""


@dataclass(frozen=True)
class FanOut:
    """What ``fan_out`` (and ``engine.twoway.send_broadcast``) did."""

    broadcast_id: int
    recipients: int
    suppressed: int
    # Deliveries that wait for the end of a group's night window.
    waiting: int
    skipped: dict[SkipReason, int]

    def summary_ja(self) -> str:
        parts = [f"宛先 {self.recipients} 件"]
        if self.suppressed:
            parts.append(f"うち配信停止リスト {self.suppressed} 件")
        if self.waiting:
            parts.append(f"夜間のため朝まで待つもの {self.waiting} 件")
        for reason, n in sorted(self.skipped.items()):
            parts.append(f"対象外: {SKIP_LABELS_JA[reason]} {n} 件")
        return "、".join(parts)


@dataclass
class _Found:
    """The audience's contacts to send to, before any address is opened."""

    # (address sealed under ADDRESS, address hash): the queue opens them as it stores them.
    contacts: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Address hash -> when its delivery may go, for those that wait out a night window.
    waits: dict[bytes, datetime] = field(default_factory=dict)
    skipped: dict[SkipReason, int] = field(default_factory=dict)

    def skip(self, reason: SkipReason) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


async def _find(
    conn: asyncpg.Connection | asyncpg.Pool,
    audience: Audience,
    category: Category,
    priority: Priority,
    send_at: datetime,
) -> _Found:
    """The audience's contacts (each once) with their wait, and the skipped ones counted."""
    out = _Found()
    if audience.is_empty():
        return out
    groups: dict[int, Group] = (
        await groups_by_id(conn, audience.groups) if audience.groups else {}
    )
    rows = await conn.fetch(
        RESOLVE_SQL,
        list(audience.boards), list(audience.schools), list(audience.grades),
        list(audience.classes), list(audience.accounts), list(audience.groups),
    )
    urgent = category is Category.EMERGENCY or priority is Priority.EMERGENCY
    contacts = out.contacts
    for r in rows:
        if r["state"] == "left":
            out.skip(SkipReason.LEFT)
            continue
        if not r["confirmed"]:
            out.skip(SkipReason.UNCONFIRMED)
            continue
        if r["emergency_only"] and not urgent:
            out.skip(SkipReason.EMERGENCY_ONLY)
            continue
        if not r["direct"]:
            accepting = [groups[g] for g in r["via"] if groups[g].conditions.receives(category)]
            if not accepting:
                out.skip(SkipReason.CATEGORY)
                continue
            wait = None if urgent else _night_wait(accepting, send_at)
            if wait is not None:
                out.waits[r["address_hash"]] = wait
        contacts.append((r["address_sealed"], r["address_hash"]))
    return out


async def resolve(
    conn: asyncpg.Connection | asyncpg.Pool,
    people: People,
    audience: Audience,
    category: Category,
    priority: Priority,
    send_at: datetime,
) -> Resolved:
    """The audience's addresses (each once) with their wait, and the skipped ones counted."""
    found = await _find(conn, audience, category, priority, send_at)
    out = Resolved(skipped=found.skipped)
    open_sealed = people.sealer.open
    waits = found.waits
    for sealed, address_hash in found.contacts:
        out.recipients[open_sealed(sealed, ADDRESS)] = waits.get(address_hash)
    return out


def _night_wait(groups: list[Group], send_at: datetime) -> datetime | None:
    """When a contact reached through these groups may receive mail sent at ``send_at``."""
    ends: list[datetime] = []
    for g in groups:
        night = g.conditions.night
        end = night.end_after(send_at) if night else None
        if end is None:
            return None  # one group without a night at this time: no wait
        ends.append(end)
    return min(ends)


async def fan_out(
    people: People,
    queue: Queue,
    broadcast: NewBroadcast,
    audience: Audience,
    category: Category,
    max_age: float,
    within: Callable[[asyncpg.Connection, int], Awaitable[None]] | None = None,
    personal_page: bool = False,
) -> FanOut:
    """Resolve the audience, add ``broadcast.recipients`` (given by address), fan out, commit.

    ``within(conn, broadcast_id)`` runs in the same transaction before it commits, so what a
    caller records about the broadcast commits with it or not at all. ``personal_page``: the
    mails link to the delivery's personal page. Raises InputError, changing nothing, when
    nobody is left to send to. Broadcasts are sent with ``engine.twoway.send_broadcast``,
    which ties the deliveries to their contacts and accounts around this.
    """
    now = people.clock.now()
    send_at = broadcast.send_at or now
    sealer = people.sealer
    async with people.pool.acquire() as conn, conn.transaction():
        found = await _find(conn, audience, category, broadcast.priority, send_at)
        # An address given by hand that is also a contact's (same spelling) counts once and
        # goes at once; the queue sends to each address once (without case).
        given = {sealer.address_hash(a) for a in broadcast.recipients}
        known = {h for _, h in found.contacts} if given else set()
        recipients = len(found.contacts) + len(given - known)
        if not recipients:
            skipped = "、".join(
                f"{SKIP_LABELS_JA[r]} {n} 件" for r, n in sorted(found.skipped.items())
            )
            raise InputError(
                "配信できる宛先がありません (no recipient left)"
                + (f": 対象外 {skipped}" if skipped else ": 対象に連絡先が登録されていません")
            )
        broadcast_id = await queue.enqueue(
            broadcast, now, max_age, conn=conn, contacts=found.contacts
        )
        suppressed: int = await conn.fetchval(
            "UPDATE broadcasts SET category = $2, audience = $3::jsonb, skipped = $4::jsonb, "
            "personal_page = $5 WHERE id = $1 RETURNING suppressed_count",
            broadcast_id, category.value,
            json.dumps({**audience.as_json(), "addresses": len(broadcast.recipients)}),
            json.dumps({r.value: n for r, n in found.skipped.items()}),
            personal_page,
        )
        waits = {h: end for h, end in found.waits.items() if h not in given}
        waiting = await _hold_until_morning(conn, broadcast_id, waits, max_age)
        if within is not None:
            await within(conn, broadcast_id)
    return FanOut(broadcast_id, recipients, suppressed, waiting, dict(found.skipped))


async def _hold_until_morning(
    conn: asyncpg.Connection,
    broadcast_id: int,
    waits: dict[bytes, datetime],
    max_age: float,
) -> int:
    """Move the deliveries that wait out a night window (by address hash); one statement per
    distinct end."""
    by_end: dict[datetime, list[bytes]] = {}
    for address_hash, end in waits.items():
        by_end.setdefault(end, []).append(address_hash)
    moved = 0
    for end, hashes in by_end.items():
        result: str = await conn.execute(
            "UPDATE deliveries SET next_attempt_at = $3, expires_at = $4 "
            "WHERE broadcast_id = $1 AND recipient_hash = ANY($2::bytea[]) AND state = 'queued'",
            broadcast_id, hashes, end, end + timedelta(seconds=max_age),
        )
        moved += int(result.split()[-1])
    return moved
