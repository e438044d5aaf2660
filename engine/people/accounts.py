"""Accounts in bulk: exporting, and purging personal data (importing: ``importing``).

An import adds and updates accounts in one transaction with one COPY per table, so 40,000
accounts with two contacts each take seconds (``bench/people_import.py``). Contacts are unique
by address: a sibling's guardian gets one contact linked to both children. An imported contact
is confirmed only when the operator says so; an existing confirmed contact is never made
unconfirmed again, and one that left stays left. The export is in the form the import reads,
with each account's ID (so importing it back updates, and changes nothing when unedited) and
its registration state (登録状況, read and ignored by the import).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.people.importing import ImportPlan as ImportPlan
from engine.people.importing import ImportResult as ImportResult
from engine.people.importing import PlannedRow as PlannedRow
from engine.people.importing import plan_import as plan_import
from engine.people.importing import write_import as write_import
from engine.people.models import Organisation
from engine.people.store import ACCOUNT_NAME, ADDRESS, CODE, People
from engine.platform.csv_io import csv_text
from engine.queue.withdrawn import forget_everyone, forget_recipients

# 登録状況: at least one of the account's contacts confirmed and receiving, or none.
REGISTERED = "登録済み"
UNREGISTERED = "未確認"

EXPORT_SQL = """
SELECT a.id, a.kind, o.code AS school, g.grade, c.name AS class_name, a.number, a.name_sealed,
       a.code_sealed,
       array(SELECT k.address_sealed FROM contact_accounts ca
             JOIN contacts k ON k.id = ca.contact_id
             WHERE ca.account_id = a.id ORDER BY ca.created_at, k.id) AS contacts,
       array(SELECT CASE WHEN gr.owner_id IN (a.school_id, o.parent_id) THEN gr.name
                         ELSE go.code || '/' || gr.name END
             FROM account_groups ag JOIN groups gr ON gr.id = ag.group_id
             JOIN organisations go ON go.id = gr.owner_id
             WHERE ag.account_id = a.id ORDER BY gr.name) AS groups,
       EXISTS (SELECT 1 FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
               WHERE ca.account_id = a.id AND k.confirmed_at IS NOT NULL
               AND k.state = 'active') AS registered
FROM accounts a JOIN organisations o ON o.id = a.school_id
LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id
WHERE a.state = 'active' AND ($1::bigint IS NULL OR a.school_id = $1)
ORDER BY o.code, g.grade NULLS LAST, c.name, a.number NULLS LAST, a.id
"""


async def export_csv(people: People, school: Organisation | None = None) -> str:
    """Active accounts as CSV with Japanese headers that ``import`` reads back (UTF-8 BOM)."""
    rows = await people.pool.fetch(EXPORT_SQL, school.id if school else None)
    width = max([2, *(len(r["contacts"]) for r in rows)])
    open_sealed = people.sealer.open

    def row(r: Any) -> list[object]:
        contacts = [open_sealed(s, ADDRESS) for s in r["contacts"]]
        return [
            r["id"], r["school"], r["grade"] or "", r["class_name"] or "", r["number"] or "",
            open_sealed(r["name_sealed"], ACCOUNT_NAME),
            "教職員" if r["kind"] == "staff" else "児童生徒",
            open_sealed(r["code_sealed"], CODE),
            *contacts, *[""] * (width - len(contacts)), "、".join(r["groups"]),
            REGISTERED if r["registered"] else UNREGISTERED,
        ]

    return csv_text(
        ["ID", "学校", "学年", "組", "番号", "氏名", "種別", "登録コード",
         *(f"連絡先{i}" for i in range(1, width + 1)), "グループ", "登録状況"],
        (row(r) for r in rows),
    )


@dataclass(frozen=True)
class PurgeResult:
    accounts: int
    contacts: int
    group_memberships: int
    # Deliveries whose address was removed from the queue, and suppression entries removed.
    deliveries: int = 0
    suppressions: int = 0


# What a purge deletes from, vacuumed after it.
PURGED_TABLES = (
    "accounts, contacts, contact_accounts, contact_groups, account_groups, "
    "registration_requests, deliveries, bounces, suppressions, inbound_messages, soft_failures"
)


async def purge(people: People, school: Organisation | None) -> PurgeResult:
    """Delete a school's (or, with None, everyone's) accounts and the contacts only they had.

    A contact that also receives for another school's child, or belongs to another owner's
    group, is kept with those links. The addresses of the contacts deleted also leave the
    queue (engine.queue.bounced.forget_recipients) and the suppression list. The freed rows are
    vacuumed afterwards.
    """
    async with people.pool.acquire() as conn:
        async with conn.transaction():
            result = await purge_rows(conn, people, school, people.clock.now())
        # Dead rows stay in the table files until vacuumed; they are sealed, but go anyway.
        await conn.execute(f"VACUUM {PURGED_TABLES}")
    return result


async def purge_rows(
    conn: asyncpg.Connection, people: People, school: Organisation | None, now: datetime
) -> PurgeResult:
    """``purge``'s deletions on ``conn``, inside the caller's transaction (the disposal at
    contract end deletes staff and files in the same one, engine/staff/disposal.py); the
    caller vacuums ``PURGED_TABLES`` after the commit."""
    if school is None:
        memberships = _count(await conn.execute("DELETE FROM contact_groups"))
        accounts = _count(await conn.execute("DELETE FROM accounts"))
        gone = await conn.fetch(
            "DELETE FROM contacts RETURNING address_sealed, address_hash"
        )
        contacts = len(gone)
        # Pending registrations hold sealed addresses too (migration 010).
        await conn.execute("DELETE FROM registration_requests")
    else:
        candidates = [
            r["contact_id"] for r in await conn.fetch(
                "SELECT ca.contact_id FROM contact_accounts ca JOIN accounts a "
                "ON a.id = ca.account_id WHERE a.school_id = $1 UNION "
                "SELECT cg.contact_id FROM contact_groups cg JOIN groups g "
                "ON g.id = cg.group_id WHERE g.owner_id = $1",
                school.id,
            )
        ]
        memberships = _count(await conn.execute(
            "DELETE FROM contact_groups cg USING groups g "
            "WHERE g.id = cg.group_id AND g.owner_id = $1",
            school.id,
        ))
        accounts = _count(
            await conn.execute("DELETE FROM accounts WHERE school_id = $1", school.id)
        )
        await conn.execute(
            "DELETE FROM registration_requests WHERE school_id = $1", school.id
        )
        gone = await conn.fetch(
            "DELETE FROM contacts c WHERE c.id = ANY($1::bigint[]) "
            "AND NOT EXISTS (SELECT 1 FROM contact_accounts ca WHERE ca.contact_id = c.id) "
            "AND NOT EXISTS (SELECT 1 FROM contact_groups cg WHERE cg.contact_id = c.id) "
            "RETURNING address_sealed, address_hash",
            candidates,
        )
        contacts = len(gone)
    addresses = [people.sealer.open(r["address_sealed"], ADDRESS) for r in gone]
    if school is None:
        # Everyone's: addresses given by hand and kept mails go too.
        deliveries = await forget_everyone(conn, people.sealer, now)
        suppressions = _count(await conn.execute("DELETE FROM suppressions"))
    else:
        deliveries = await forget_recipients(
            conn, people.sealer, [bytes(r["address_hash"]) for r in gone], now
        )
        suppressions = await Suppressions(conn, people.sealer).forget(addresses)
    return PurgeResult(accounts, contacts, memberships, deliveries, suppressions)


def _count(status: str) -> int:
    return int(status.split()[-1])
