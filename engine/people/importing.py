"""Importing an accounts CSV that adds new accounts and updates the ones it names.

A row is matched to an active account by its ``ID`` cell when the file has one, else by school
+ grade + class + number, else by its registration code; a matched row updates the account
(name, kind, class and number, code, contacts, groups: only the fields the file has columns
for), an unmatched one adds an account. With ``close_missing`` the active accounts of the
file's schools that no row matched are closed (``closed_reason`` 'removed'). A contact the file
no longer lists for an account loses that link; a contact left with no account and no group
goes, and its unsent mail is withdrawn (``engine.queue.withdrawn``). An export imports back
with no change.

Everything runs in one transaction under one lock: the rows are checked against the database
(``_plan``), then written (``_write``). A dry run does exactly the same and rolls back, so its
counts and changes are the real run's. Every change is listed (``Change``) for the operator's
changes file. The values live in engine/people/import_models.py (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from engine.people.codes import new_code
from engine.people.csv_import import ParsedFile, Row
from engine.people.directory import current_year, ensure_classes, list_groups, list_organisations
from engine.people.import_models import (
    IMPORT_LOCK,
    KIND_LABELS,
    REMOVED_TEXT,
    Change,
    Existing,
    ImportOptions,
    ImportPlan,
    ImportReport,
    ImportResult,
    Place,
    PlannedRow,
    changes_csv,
)
from engine.people.models import AccountKind, Group, Organisation, OrgKind
from engine.people.store import ACCOUNT_NAME, ADDRESS, CODE, People
from engine.platform.db import BULK_ROWS, analyze
from engine.platform.errors import InputError
from engine.queue.withdrawn import withdraw_unsent

DEFAULT_OPTIONS = ImportOptions()


class _RolledBack(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("rolled back")
        self.report = report


async def import_accounts(
    people: People, parsed: ParsedFile, options: ImportOptions = DEFAULT_OPTIONS
) -> ImportReport:
    """Check and write the file in one transaction; a dry run (or a strict refusal) rolls it
    back after the same work."""
    try:
        async with people.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK)
            plan = await _plan(conn, people, parsed)
            if options.add_only:
                plan.errors += [(p.row.line, "既に登録されています (already registered)")
                                for p in plan.rows if p.existing is not None]
            report = ImportReport(plan.encoding, plan.errors)
            if plan.errors and (options.strict or options.close_missing):
                raise _RolledBack(report)
            await _write(conn, people, plan, options, report)
            if options.dry_run:
                raise _RolledBack(report)
            report.applied = True
    except _RolledBack as rolled:
        return rolled.report
    if report.added + report.updated >= BULK_ROWS:
        await analyze(people.pool, "contacts", "accounts", "contact_accounts", "account_groups")
    return report


async def plan_import(people: People, parsed: ParsedFile) -> ImportPlan:
    """The rows checked against the database, nothing written (``import_accounts`` plans and
    writes in one transaction; this is for callers that look first)."""
    async with people.pool.acquire() as conn:
        return await _plan(conn, people, parsed)


async def write_import(people: People, plan: ImportPlan, confirmed: bool) -> ImportResult:
    """Write a plan made by ``plan_import`` (add and update; nothing closed)."""
    report = ImportReport(plan.encoding, plan.errors)
    async with people.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK)
        await _write(conn, people, plan, ImportOptions(confirmed=confirmed), report)
    if report.added >= BULK_ROWS:
        await analyze(people.pool, "contacts", "accounts", "contact_accounts", "account_groups")
    return ImportResult(
        report.added + report.updated, report.new_contacts, report.existing_contacts,
        report.confirmed,
    )


_EXISTING_SQL = """
SELECT a.id, a.kind, a.school_id, g.grade, c.name AS class_name, a.number, a.name_sealed,
       a.code_hash,
       array(SELECT k.id FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
             WHERE ca.account_id = a.id ORDER BY k.id) AS contact_ids,
       array(SELECT k.address_sealed FROM contact_accounts ca JOIN contacts k
             ON k.id = ca.contact_id WHERE ca.account_id = a.id ORDER BY k.id) AS addresses,
       array(SELECT ag.group_id FROM account_groups ag WHERE ag.account_id = a.id) AS groups
FROM accounts a LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id
WHERE a.state = 'active' AND (a.school_id = ANY($1::bigint[]) OR a.id = ANY($2::bigint[]))
"""


async def _existing(
    conn: asyncpg.Connection, people: People, schools: list[int], ids: list[int]
) -> dict[int, Existing]:
    open_ = people.sealer.open
    return {
        r["id"]: Existing(
            r["id"], AccountKind(r["kind"]), r["school_id"], r["grade"], r["class_name"],
            r["number"], open_(r["name_sealed"], ACCOUNT_NAME), bytes(r["code_hash"]),
            {open_(s, ADDRESS): cid for s, cid in zip(r["addresses"], r["contact_ids"],
                                                       strict=True)},
            frozenset(r["groups"]),
        )
        for r in await conn.fetch(_EXISTING_SQL, schools, ids)
    }


async def _plan(conn: asyncpg.Connection, people: People, parsed: ParsedFile) -> ImportPlan:
    year = await current_year(conn, people.clock.now(), create=False)
    plan = ImportPlan(year, parsed.encoding, errors=list(parsed.errors), columns=parsed.columns)
    orgs = await list_organisations(conn)
    by_key = {o.code: o for o in orgs} | {o.name: o for o in orgs if o.name not in
                                            {x.code for x in orgs}}
    groups = await list_groups(conn)
    named = {by_key[r.school].id for r in parsed.rows if r.school in by_key}
    plan.schools = {o.id: o for o in orgs if o.id in named}
    existing = await _existing(
        conn, people, sorted(named), [r.account_id for r in parsed.rows if r.account_id]
    )
    by_place: dict[Place, Existing] = {
        (e.school_id, e.grade, e.class_name, e.number): e for e in existing.values()
        if e.number is not None and e.class_name is not None
    }
    by_code = {e.code_hash: e for e in existing.values()}
    code_hash = {c: people.sealer.lookup_hash(c, CODE) for c in {r.code for r in parsed.rows
                                                                  if r.code}}
    codes_elsewhere = {
        bytes(r["code_hash"]) for r in await conn.fetch(
            "SELECT code_hash FROM accounts WHERE code_hash = ANY($1::bytea[])",
            list(code_hash.values()),
        )
    } - set(by_code)
    matched: dict[int, int] = {}  # account id -> line
    seen_codes: dict[str, int] = {}
    first: list[PlannedRow] = []
    for row in parsed.rows:
        try:
            school = by_key.get(row.school)
            if school is None:
                raise InputError(f"学校「{row.school}」は登録されていません (unknown school)")
            _check_grade(row, school)
            account = _match(row, school, existing, by_place, by_code, code_hash)
            if account is not None and account.id in matched:
                raise InputError(
                    f"{matched[account.id]} 行目と同じアカウントです (the same account twice)"
                )
            if row.code is not None:
                h = code_hash[row.code]
                owner = by_code.get(h)
                if h in codes_elsewhere or (owner is not None and owner is not account) or (
                    row.code in seen_codes
                ):
                    raise InputError(f"登録コード {row.code} は既に使われています (code in use)")
                seen_codes[row.code] = row.line
            group_ids = tuple(_group_for(name, school, groups) for name in row.groups)
        except InputError as exc:
            plan.errors.append((row.line, str(exc)))
            continue
        if account is not None:
            matched[account.id] = row.line
        first.append(PlannedRow(row, school, group_ids, account))
    # Places: those of accounts no row names stay taken; each row claims its new one.
    taken: dict[Place, str] = {
        k: "" for k, e in by_place.items() if e.id not in matched
    }
    for p in first:
        place = _place_of(p, plan.columns)
        if place[3] is not None and place[2] is not None:
            if place in taken:
                where = f"{taken[place]} 行目と" if taken[place] else "既に"
                plan.errors.append((p.row.line, (
                    f"{p.school.name} {place[1]}年{place[2]}組 {place[3]}番は{where}重なります "
                    f"(already registered)"
                )))
                continue
            taken[place] = str(p.row.line)
        plan.rows.append(p)
    named_ids = {p.existing.id for p in plan.rows if p.existing}
    plan.missing = [
        e for e in existing.values() if e.school_id in named and e.id not in named_ids
        and e.id not in matched
    ]
    plan.errors.sort()
    return plan


def _match(
    row: Row,
    school: Organisation,
    existing: dict[int, Existing],
    by_place: dict[Place, Existing],
    by_code: dict[bytes, Existing],
    code_hash: dict[str, bytes],
) -> Existing | None:
    """The account a row names: its ID, else its place, else its code; None: a new one."""
    if row.account_id is not None:
        found = existing.get(row.account_id)
        if found is None:
            raise InputError(
                f"ID {row.account_id} の有効なアカウントはありません (no active account "
                f"{row.account_id}); 新しく登録するなら ID を空にしてください"
            )
        if found.school_id != school.id:
            raise InputError(
                f"ID {row.account_id} は別の学校のアカウントです: 学校を移るときは転出と転入で "
                f"(another school's account; transfer out and in)"
            )
        return found
    if row.number is not None and row.class_name is not None:
        return by_place.get((school.id, row.grade, row.class_name, row.number))
    if row.code is not None:
        found = by_code.get(code_hash[row.code])
        return found if found is not None and found.school_id == school.id else None
    return None


def _place_of(p: PlannedRow, columns: frozenset[str]) -> Place:
    """Where the row puts its account: the file's grade, class and number where it has the
    column, the account's own where it has not."""
    e, r = p.existing, p.row
    if e is None:
        return (p.school.id, r.grade, r.class_name, r.number)
    grade = r.grade if "grade" in columns else e.grade
    class_name = r.class_name if "class" in columns else e.class_name
    number = r.number if "number" in columns else e.number
    return (p.school.id, grade, class_name, number)


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


@dataclass
class _Updates:
    names: list[tuple[int, bytes]] = field(default_factory=list)
    kinds: list[tuple[int, str]] = field(default_factory=list)
    places: list[tuple[int, tuple[int, int, str | None] | None, int | None]] = field(
        default_factory=list
    )
    codes: list[tuple[int, str]] = field(default_factory=list)
    groups: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    unlink: list[tuple[int, int]] = field(default_factory=list)  # account, contact
    link: list[tuple[int, str]] = field(default_factory=list)  # account, address


def _diff(p: PlannedRow, plan: ImportPlan, people: People, up: _Updates, report: ImportReport,
          group_names: dict[int, str]) -> None:
    """The updates a matched row makes to its account, each also as a ``Change``."""
    e, r, columns = p.existing, p.row, plan.columns
    assert e is not None
    place = _place_of(p, columns)
    changes: list[Change] = []

    def change(item: str, before: str, after: str) -> None:
        changes.append(Change(
            "変更", r.line, e.id, p.school.code, place[1], place[2], place[3], r.name, item,
            before, after,
        ))

    if r.name != e.name:
        up.names.append((e.id, people.sealer.seal(r.name, ACCOUNT_NAME)))
        change("氏名", e.name, r.name)
    if "kind" in columns and r.kind is not e.kind:
        up.kinds.append((e.id, r.kind.value))
        change("種別", KIND_LABELS[e.kind], KIND_LABELS[r.kind])
    if place[1:] != (e.grade, e.class_name, e.number):
        grade_key = None if place[1] is None else (p.school.id, place[1], place[2])
        up.places.append((e.id, grade_key, place[3]))
        change("学年・組・番号", _where(e.grade, e.class_name, e.number),
               _where(place[1], place[2], place[3]))
    if r.code is not None and people.sealer.lookup_hash(r.code, CODE) != e.code_hash:
        up.codes.append((e.id, r.code))
        change("登録コード", "(変更前)", r.code)
    if "groups" in columns and frozenset(p.group_ids) != e.groups:
        up.groups.append((e.id, p.group_ids))
        change("グループ", "、".join(sorted(group_names[g] for g in e.groups)),
               "、".join(sorted(group_names[g] for g in p.group_ids)))
    if "contacts" in columns:
        for address, contact_id in e.contacts.items():
            if address not in r.contacts:
                up.unlink.append((e.id, contact_id))
                change("連絡先", address, "")
        for address in r.contacts:
            if address not in e.contacts:
                up.link.append((e.id, address))
                change("連絡先", "", address)
    if changes:
        report.updated += 1
        report.changes.extend(changes)
    else:
        report.unchanged += 1


def _where(grade: int | None, class_name: str | None, number: int | None) -> str:
    if grade is None:
        return ""
    return f"{grade}年" + (f"{class_name}組" if class_name else "") + (
        f" {number}番" if number is not None else ""
    )


async def _write(
    conn: asyncpg.Connection,
    people: People,
    plan: ImportPlan,
    options: ImportOptions,
    report: ImportReport,
) -> None:
    """Add, update and (with ``close_missing``) close, in the caller's transaction."""
    sealer, now = people.sealer, people.clock.now()
    group_names = {g.id: g.name for g in await list_groups(conn)}
    up = _Updates()
    new_rows = [p for p in plan.rows if p.existing is None]
    for p in plan.rows:
        if p.existing is not None:
            _diff(p, plan, people, up, report, group_names)
    wanted: list[tuple[int, int, str | None]] = [
        (p.school.id, p.row.grade, p.row.class_name) for p in new_rows if p.row.grade is not None
    ]
    wanted += [key for _, key, _ in up.places if key is not None]
    places = await ensure_classes(conn, plan.year, wanted)
    # Contacts: the new rows' and the added links' addresses, created when new.
    addresses = list(dict.fromkeys(
        [a for p in new_rows for a in p.row.contacts] + [a for _, a in up.link]
    ))
    by_address = await _contacts_for(conn, people, addresses, options.confirmed, now, report)
    # New accounts, one COPY per table.
    account_ids = await _new_ids(conn, "accounts", len(new_rows))
    records: list[tuple[object, ...]] = []
    links: list[tuple[int, int, datetime]] = []
    memberships: list[tuple[int, int]] = []
    for account_id, p in zip(account_ids, new_rows, strict=True):
        r = p.row
        grade_id, class_id = (
            places[(p.school.id, r.grade, r.class_name)] if r.grade is not None else (None, None)
        )
        code = r.code or new_code()
        records.append((
            account_id, r.kind.value, p.school.id, grade_id, class_id, r.number,
            sealer.seal(r.name, ACCOUNT_NAME), sealer.seal(code, CODE),
            sealer.lookup_hash(code, CODE), now,
        ))
        links.extend((by_address[a], account_id, now) for a in r.contacts)
        memberships.extend((account_id, g) for g in p.group_ids)
        report.changes.append(Change(
            "追加", r.line, None, p.school.code, r.grade, r.class_name, r.number, r.name,
            after="、".join(r.contacts),
        ))
    report.added, report.added_ids = len(new_rows), account_ids
    await conn.copy_records_to_table(
        "accounts",
        columns=["id", "kind", "school_id", "grade_id", "class_id", "number", "name_sealed",
                 "code_sealed", "code_hash", "created_at"],
        records=records,
    )
    links.extend((by_address[a], account, now) for account, a in up.link)
    await _apply_updates(conn, people, up, places)
    await conn.copy_records_to_table(
        "contact_accounts", columns=["contact_id", "account_id", "created_at"], records=links
    )
    memberships.extend((account, g) for account, ids in up.groups for g in ids)
    await conn.copy_records_to_table(
        "account_groups", columns=["account_id", "group_id"], records=memberships
    )
    report.links_added = len(links)
    report.links_removed = len(up.unlink)
    if options.close_missing and plan.missing:
        await conn.execute(
            "UPDATE accounts SET state = 'closed', closed_reason = 'removed', closed_at = $2 "
            "WHERE id = ANY($1::bigint[])",
            [e.id for e in plan.missing], now,
        )
        report.closed = len(plan.missing)
        report.changes.extend(
            Change("終了", None, e.id, plan.schools[e.school_id].code, e.grade, e.class_name,
                   e.number, e.name)
            for e in plan.missing
        )
    report.contacts_removed, report.withdrawn = await drop_orphans(
        conn, [c for _, c in up.unlink], now
    )


async def _contacts_for(
    conn: asyncpg.Connection, people: People, addresses: list[str], confirmed: bool,
    now: datetime, report: ImportReport,
) -> dict[str, int]:
    """address -> contact id, creating the new ones (confirmed when told); an existing
    unconfirmed one is confirmed when told, never the other way."""
    sealer = people.sealer
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
    ids = dict(zip((h for _, h in fresh), await _new_ids(conn, "contacts", len(fresh)),
                   strict=True))
    await conn.copy_records_to_table(
        "contacts",
        columns=["id", "address_sealed", "address_hash", "confirmed_at", "created_at",
                 "updated_at"],
        records=[(ids[h], sealer.seal(a, ADDRESS), h, now if confirmed else None, now, now)
                 for a, h in fresh],
    )
    ids.update({h: cid for h, (cid, _) in existing.items()})
    report.new_contacts += len(fresh)
    report.existing_contacts += len(existing)
    if confirmed:
        result = await conn.execute(
            "UPDATE contacts SET confirmed_at = $2, updated_at = $2 "
            "WHERE id = ANY($1::bigint[]) AND confirmed_at IS NULL",
            [cid for cid, at in existing.values() if at is None], now,
        )
        report.confirmed += len(fresh) + int(result.split()[-1])
    return {a: ids[h] for a, h in zip(addresses, hashes, strict=True)}


async def _apply_updates(
    conn: asyncpg.Connection,
    people: People,
    up: _Updates,
    places: dict[tuple[int, int, str | None], tuple[int, int | None]],
) -> None:
    sealer = people.sealer
    if up.names:
        await conn.execute(
            "UPDATE accounts a SET name_sealed = u.v FROM unnest($1::bigint[], $2::bytea[]) "
            "AS u(id, v) WHERE a.id = u.id",
            [i for i, _ in up.names], [v for _, v in up.names],
        )
    if up.kinds:
        await conn.execute(
            "UPDATE accounts a SET kind = u.v FROM unnest($1::bigint[], $2::text[]) AS u(id, v) "
            "WHERE a.id = u.id",
            [i for i, _ in up.kinds], [v for _, v in up.kinds],
        )
    if up.codes:
        await conn.execute(
            "UPDATE accounts a SET code_sealed = u.s, code_hash = u.h "
            "FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(id, s, h) "
            "WHERE a.id = u.id",
            [i for i, _ in up.codes], [sealer.seal(c, CODE) for _, c in up.codes],
            [sealer.lookup_hash(c, CODE) for _, c in up.codes],
        )
    if up.places:
        ids = [i for i, _, _ in up.places]
        # Numbers cleared first: two children may swap numbers within one class.
        await conn.execute(
            "UPDATE accounts SET number = NULL WHERE id = ANY($1::bigint[])", ids
        )
        grade_ids: list[int | None] = []
        class_ids: list[int | None] = []
        for _, key, _ in up.places:
            g, c = places[key] if key is not None else (None, None)
            grade_ids.append(g)
            class_ids.append(c)
        try:
            await conn.execute(
                "UPDATE accounts a SET grade_id = u.g, class_id = u.c, number = u.n "
                "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[]) "
                "AS u(id, g, c, n) WHERE a.id = u.id",
                ids, grade_ids, class_ids, [n for _, _, n in up.places],
            )
        except asyncpg.UniqueViolationError:
            raise InputError(
                "新しい組・番号が他の児童生徒と重なります。何も変更していません "
                "(a new number is taken in its class)"
            ) from None
    if up.groups:
        await conn.execute(
            "DELETE FROM account_groups WHERE account_id = ANY($1::bigint[])",
            [i for i, _ in up.groups],
        )
    if up.unlink:
        await conn.execute(
            "DELETE FROM contact_accounts ca USING unnest($1::bigint[], $2::bigint[]) "
            "AS u(a, c) WHERE ca.account_id = u.a AND ca.contact_id = u.c",
            [a for a, _ in up.unlink], [c for _, c in up.unlink],
        )


async def drop_orphans(
    conn: asyncpg.Connection, contact_ids: Sequence[int], now: datetime
) -> tuple[int, int]:
    """Delete those of the contacts that receive for no account and no group any more, after
    withdrawing their unsent mail; returns (contacts deleted, deliveries withdrawn)."""
    if not contact_ids:
        return 0, 0
    gone = await conn.fetch(
        "DELETE FROM contacts c WHERE c.id = ANY($1::bigint[]) "
        "AND NOT EXISTS (SELECT 1 FROM contact_accounts ca WHERE ca.contact_id = c.id) "
        "AND NOT EXISTS (SELECT 1 FROM contact_groups cg WHERE cg.contact_id = c.id) "
        "RETURNING address_hash",
        list(set(contact_ids)),
    )
    withdrawn = await withdraw_unsent(
        conn, [bytes(r["address_hash"]) for r in gone], now, REMOVED_TEXT
    )
    return len(gone), withdrawn


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


__all__ = [
    "IMPORT_LOCK", "Change", "ImportOptions", "ImportPlan", "ImportReport", "ImportResult",
    "PlannedRow", "changes_csv", "drop_orphans", "import_accounts", "plan_import", "write_import",
]
