"""Accounts in bulk: importing a checked CSV, exporting, and purging personal data.

An import is planned first (``plan_import``: every row checked against the database, nothing
written) and then written in one transaction (``write_import``) with one COPY per table, so
40,000 accounts with two contacts each take seconds (``bench/people_import.py``). Contacts are
unique by address: a sibling's guardian gets one contact linked to both children. An imported
contact is confirmed only when the operator says so; an existing confirmed contact is never
made unconfirmed again, and one that left stays left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.people.codes import new_code
from engine.people.csv_import import ParsedFile, Row
from engine.people.directory import current_year, ensure_classes, list_groups, list_organisations
from engine.people.models import Group, Organisation, OrgKind
from engine.people.store import ACCOUNT_NAME, ADDRESS, CODE, People
from engine.platform.csv_io import csv_text
from engine.platform.db import BULK_ROWS, analyze
from engine.platform.errors import InputError
from engine.queue.withdrawn import forget_everyone, forget_recipients

# Imports of the same database do not interleave: each sees the other's contacts.
_IMPORT_LOCK = 0x6D616D10


@dataclass(frozen=True)
class PlannedRow:
    row: Row
    school: Organisation
    group_ids: tuple[int, ...]


@dataclass
class ImportPlan:
    year: int
    encoding: str
    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    accounts: int
    new_contacts: int
    existing_contacts: int
    confirmed: int


async def plan_import(people: People, parsed: ParsedFile) -> ImportPlan:
    """Check every row against schools, groups and existing accounts; write nothing."""
    db = people.pool
    year = await current_year(db, people.clock.now(), create=False)
    plan = ImportPlan(year, parsed.encoding, errors=list(parsed.errors))
    orgs = await list_organisations(db)
    by_key = {o.code: o for o in orgs} | {o.name: o for o in orgs if o.name not in
                                            {x.code for x in orgs}}
    groups = await list_groups(db)
    taken = {
        (r["school_id"], r["grade"], r["name"], r["number"])
        for r in await db.fetch(
            "SELECT a.school_id, g.grade, c.name, a.number FROM accounts a "
            "JOIN grades g ON g.id = a.grade_id JOIN classes c ON c.id = a.class_id "
            "WHERE a.state = 'active' AND a.number IS NOT NULL AND g.year = $1",
            year,
        )
    }
    codes = [r.code for r in parsed.rows if r.code]
    taken_codes = set()
    if codes:
        hashes = {people.sealer.lookup_hash(c, CODE): c for c in codes}
        taken_codes = {
            hashes[r["code_hash"]]
            for r in await db.fetch(
                "SELECT code_hash FROM accounts WHERE code_hash = ANY($1::bytea[])", list(hashes)
            )
        }
    seen_codes: set[str] = set()
    for row in parsed.rows:
        try:
            school = by_key.get(row.school)
            if school is None:
                raise InputError(f"学校「{row.school}」は登録されていません (unknown school)")
            _check_grade(row, school)
            if row.number is not None and row.class_name is not None:
                key = (school.id, row.grade, row.class_name, row.number)
                if key in taken:
                    raise InputError(
                        f"{school.name} {row.grade}年{row.class_name}組 {row.number}番は既に"
                        f"登録されています (already registered)"
                    )
                taken.add(key)
            if row.code is not None:
                if row.code in taken_codes or row.code in seen_codes:
                    raise InputError(f"登録コード {row.code} は既に使われています (code in use)")
                seen_codes.add(row.code)
            group_ids = tuple(_group_for(name, school, groups) for name in row.groups)
        except InputError as exc:
            plan.errors.append((row.line, str(exc)))
            continue
        plan.rows.append(PlannedRow(row, school, group_ids))
    plan.errors.sort()
    return plan


def _check_grade(row: Row, school: Organisation) -> None:
    if row.grade is None:
        return
    if school.kind is OrgKind.BOARD:
        raise InputError(
            f"{school.name}は教育委員会です: 学年は付けられません (a board has no grades)"
        )
    if not 1 <= row.grade <= school.final_grade:
        raise InputError(
            f"{school.name}の学年は 1〜{school.final_grade} です ({row.grade} は範囲外)"
        )


def _group_for(name: str, school: Organisation, groups: Sequence[Group]) -> int:
    """The group a CSV cell names: "code/name", else the row's school's, else the board's."""
    owner, _, plain = name.rpartition("/")
    found = [g for g in groups if g.name == plain]
    if owner:
        found = [g for g in found if owner in (g.owner_code, g.owner_name)]
    else:
        found = [g for g in found if g.owner_id == school.id] or [
            g for g in found if g.owner_id == school.parent_id
        ]
    if not found:
        raise InputError(
            f"グループ「{name}」は{school.name}にも教育委員会にもありません (unknown group)"
        )
    if len(found) > 1:
        raise InputError(f"グループ「{name}」が複数あります: 「学校コード/名前」で書いてください")
    return found[0].id


async def write_import(people: People, plan: ImportPlan, confirmed: bool) -> ImportResult:
    """Write the planned rows in one transaction."""
    if not plan.rows:
        return ImportResult(0, 0, 0, 0)
    sealer, now = people.sealer, people.clock.now()
    confirmed_at = now if confirmed else None
    async with people.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK)
        places = await ensure_classes(
            conn, plan.year,
            ((p.school.id, p.row.grade, p.row.class_name) for p in plan.rows
             if p.row.grade is not None),
        )
        addresses = list(dict.fromkeys(a for p in plan.rows for a in p.row.contacts))
        hashes = [sealer.lookup_hash(a, ADDRESS) for a in addresses]
        existing = {
            bytes(r["address_hash"]): (r["id"], r["confirmed_at"])
            for r in await conn.fetch(
                "SELECT id, address_hash, confirmed_at FROM contacts "
                "WHERE address_hash = ANY($1::bytea[])",
                hashes,
            )
        }
        fresh = [(a, h) for a, h in zip(addresses, hashes, strict=True) if h not in existing]
        contact_ids = dict(zip(
            (h for _, h in fresh), await _new_ids(conn, "contacts", len(fresh)), strict=True
        ))
        await conn.copy_records_to_table(
            "contacts",
            columns=["id", "address_sealed", "address_hash", "confirmed_at", "created_at",
                     "updated_at"],
            records=[
                (contact_ids[h], sealer.seal(a, ADDRESS), h, confirmed_at, now, now)
                for a, h in fresh
            ],
        )
        contact_ids.update({h: cid for h, (cid, _) in existing.items()})
        by_address = dict(zip(addresses, (contact_ids[h] for h in hashes), strict=True))
        account_ids = await _new_ids(conn, "accounts", len(plan.rows))
        account_records: list[tuple[object, ...]] = []
        links: list[tuple[int, int, datetime]] = []
        memberships: list[tuple[int, int]] = []
        for account_id, p in zip(account_ids, plan.rows, strict=True):
            r = p.row
            grade_id, class_id = (
                places[(p.school.id, r.grade, r.class_name)] if r.grade is not None
                else (None, None)
            )
            code = r.code or new_code()
            account_records.append((
                account_id, r.kind.value, p.school.id, grade_id, class_id, r.number,
                sealer.seal(r.name, ACCOUNT_NAME), sealer.seal(code, CODE),
                sealer.lookup_hash(code, CODE), now,
            ))
            links.extend((by_address[a], account_id, now) for a in r.contacts)
            memberships.extend((account_id, g) for g in p.group_ids)
        await conn.copy_records_to_table(
            "accounts",
            columns=["id", "kind", "school_id", "grade_id", "class_id", "number", "name_sealed",
                     "code_sealed", "code_hash", "created_at"],
            records=account_records,
        )
        await conn.copy_records_to_table(
            "contact_accounts", columns=["contact_id", "account_id", "created_at"], records=links
        )
        await conn.copy_records_to_table(
            "account_groups", columns=["account_id", "group_id"], records=memberships
        )
        upgraded = 0
        if confirmed:
            waiting = [cid for cid, at in existing.values() if at is None]
            result = await conn.execute(
                "UPDATE contacts SET confirmed_at = $2, updated_at = $2 "
                "WHERE id = ANY($1::bigint[]) AND confirmed_at IS NULL",
                waiting, now,
            )
            upgraded = int(result.split()[-1])
    if len(plan.rows) >= BULK_ROWS:
        await analyze(people.pool, "contacts", "accounts", "contact_accounts", "account_groups")
    return ImportResult(
        len(plan.rows), len(fresh), len(existing), len(fresh) + upgraded if confirmed else 0
    )


async def _new_ids(conn: asyncpg.Connection, table: str, n: int) -> list[int]:
    """Reserve ``n`` ids of the table's identity column (one statement), for COPY with ids."""
    if n == 0:
        return []
    rows = await conn.fetch(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id "
        f"FROM generate_series(1, $1)",
        n,
    )
    return [r["id"] for r in rows]


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
             WHERE ag.account_id = a.id ORDER BY gr.name) AS groups
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
        ]

    return csv_text(
        ["ID", "学校", "学年", "組", "番号", "氏名", "種別", "登録コード",
         *(f"連絡先{i}" for i in range(1, width + 1)), "グループ"],
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
