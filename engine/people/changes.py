"""Single changes to the roster, one at a time, for the command line and the staff screens.

Edit an account (name, number, registration code), move it to another class, transfer it out
(closes it; optionally tells its contacts with a mail in the same transaction), transfer one in
(one row through the import's own checks), add or remove one address of an account, rename or
close a school. Each runs in one transaction and changes nothing when refused; an address that
no longer receives for any account or group goes, its unsent mail withdrawn (as the import
does). The callers audit them (cli: ``Trail``; staff: ``Staff.audited`` after the rights check
of ``engine.staff.roster``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import asyncpg

from engine.people.codes import normalise_code
from engine.people.contacts import UPSERT_SQL, link_contact
from engine.people.csv_import import ParsedFile, Row
from engine.people.directory import current_year, ensure_classes, find_organisation
from engine.people.importing import ImportOptions, drop_orphans, import_accounts
from engine.people.models import AccountKind, Organisation
from engine.people.rollover import Farewell
from engine.people.store import ACCOUNT_NAME, ADDRESS, CODE, People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError

_ACCOUNT_SQL = """
SELECT a.id, a.school_id, o.code AS school, g.grade, c.name AS class_name, a.number,
       a.name_sealed
FROM accounts a JOIN organisations o ON o.id = a.school_id
LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id
WHERE a.id = $1 AND a.state = 'active'
"""


@dataclass(frozen=True)
class AccountInfo:
    id: int
    school_id: int
    school: str
    grade: int | None
    class_name: str | None
    number: int | None
    name: str

    @property
    def where(self) -> str:
        place = "" if self.grade is None else f" {self.grade}年" + (
            f"{self.class_name}組" if self.class_name else ""
        ) + (f" {self.number}番" if self.number is not None else "")
        return f"{self.school}{place}"


async def account_info(db: asyncpg.Pool | asyncpg.Connection, people: People,
                       account_id: int) -> AccountInfo:
    """The active account ``account_id``; InputError when there is none."""
    r = await db.fetchrow(_ACCOUNT_SQL, account_id)
    if r is None:
        raise InputError(
            f"アカウント {account_id} はありません (no active account {account_id})"
        )
    return AccountInfo(
        r["id"], r["school_id"], r["school"], r["grade"], r["class_name"], r["number"],
        people.sealer.open(r["name_sealed"], ACCOUNT_NAME),
    )


def _taken(exc: asyncpg.UniqueViolationError) -> InputError:
    if "code" in (exc.constraint_name or ""):
        return InputError("その登録コードは既に使われています (code in use)")
    return InputError("その組のその番号は既に使われています (number taken in that class)")


async def edit_account(
    people: People,
    account_id: int,
    name: str | None = None,
    number: int | None = None,
    code: str | None = None,
) -> AccountInfo:
    """Change the name, the number in its class or the registration code."""
    if name is not None and (not name.strip() or len(name.strip()) > 100):
        raise InputError("氏名は 1〜100 文字です (name: 1-100 characters)")
    if number is not None and not 1 <= number <= 999:
        raise InputError("番号は 1〜999 です (number 1-999)")
    plain_code = normalise_code(code) if code is not None else None
    sealer = people.sealer
    async with people.pool.acquire() as conn, conn.transaction():
        info = await account_info(conn, people, account_id)
        if number is not None and info.class_name is None:
            raise InputError("組のないアカウントに番号は付けられません (no class)")
        try:
            await conn.execute(
                "UPDATE accounts SET name_sealed = coalesce($2, name_sealed), "
                "number = coalesce($3, number), code_sealed = coalesce($4, code_sealed), "
                "code_hash = coalesce($5, code_hash) WHERE id = $1",
                account_id,
                sealer.seal(name.strip(), ACCOUNT_NAME) if name is not None else None,
                number,
                sealer.seal(plain_code, CODE) if plain_code else None,
                sealer.lookup_hash(plain_code, CODE) if plain_code else None,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _taken(exc) from None
        return await account_info(conn, people, account_id)


async def move_account(
    people: People, account_id: int, grade: int, class_name: str, number: int | None = None
) -> AccountInfo:
    """Move an account to another grade and class of its school (number: the new one, or
    none)."""
    async with people.pool.acquire() as conn, conn.transaction():
        info = await account_info(conn, people, account_id)
        school = await _school(conn, info.school_id)
        if not 1 <= grade <= school.final_grade:
            raise InputError(f"{school.name}の学年は 1〜{school.final_grade} です (grade)")
        year = await current_year(conn, people.clock.now(), create=False)
        places = await ensure_classes(conn, year, [(school.id, grade, class_name)])
        grade_id, class_id = places[(school.id, grade, class_name)]
        try:
            await conn.execute(
                "UPDATE accounts SET grade_id = $2, class_id = $3, number = $4 WHERE id = $1",
                account_id, grade_id, class_id, number,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _taken(exc) from None
        return await account_info(conn, people, account_id)


@dataclass(frozen=True)
class Closed:
    account: AccountInfo
    told: int = 0
    notice_id: int | None = None


async def close_account(
    people: People, account_id: int, reason: str = "transferred", notice: Farewell | None = None
) -> Closed:
    """Close an account (転出: ``reason`` 'transferred'); with ``notice`` its confirmed
    contacts are told in the same transaction. Its contacts stay (siblings, groups)."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        info = await account_info(conn, people, account_id)
        await conn.execute(
            "UPDATE accounts SET state = 'closed', closed_reason = $2, closed_at = $3 "
            "WHERE id = $1",
            account_id, reason, now,
        )
        if notice is None:
            return Closed(info)
        told = await conn.fetch(
            "SELECT DISTINCT c.address_sealed FROM contact_accounts ca JOIN contacts c "
            "ON c.id = ca.contact_id WHERE ca.account_id = $1 AND c.state = 'active' "
            "AND c.confirmed_at IS NOT NULL",
            account_id,
        )
        if not told:
            return Closed(info)
        addresses = [people.sealer.open(r["address_sealed"], ADDRESS) for r in told]
        notice_id = await notice.queue.enqueue(
            replace(notice.message, recipients=addresses), now, notice.max_age, conn=conn
        )
        await conn.execute(
            "UPDATE broadcasts SET audience = $2::jsonb WHERE id = $1",
            notice_id, json.dumps({"closed_account": account_id}),
        )
        return Closed(info, len(addresses), notice_id)


async def transfer_in(
    people: People,
    school: str,
    name: str,
    grade: int | None,
    class_name: str | None,
    number: int | None,
    contacts: tuple[str, ...] = (),
    kind: AccountKind = AccountKind.CHILD,
    confirmed: bool = False,
) -> AccountInfo:
    """Add one account (転入) through the import's checks (school, grade, number taken)."""
    if kind is AccountKind.CHILD and grade is None:
        raise InputError("児童・生徒には学年が必要です (grade is required for a child)")
    if not name.strip() or len(name.strip()) > 100:
        raise InputError("氏名は 1〜100 文字です (name: 1-100 characters)")
    row = Row(1, school, kind, grade, class_name, number, name.strip(), None,
              tuple(dict.fromkeys(normalise_address(a) for a in contacts)), ())
    parsed = ParsedFile("utf-8", [row], columns=frozenset(
        {"school", "grade", "class", "number", "name", "contacts"}
    ))
    report = await import_accounts(
        people, parsed, ImportOptions(confirmed=confirmed, strict=True, add_only=True)
    )
    if report.errors:
        raise InputError(report.errors[0][1])
    return await account_info(people.pool, people, report.added_ids[0])


async def add_address(
    people: People, account_id: int, address: str, confirmed: bool = False
) -> AccountInfo:
    """One more address for an account (created, or an existing contact linked)."""
    normal = normalise_address(address)
    now, sealer = people.clock.now(), people.sealer
    async with people.pool.acquire() as conn, conn.transaction():
        info = await account_info(conn, people, account_id)
        contact_id = await conn.fetchval(
            UPSERT_SQL, sealer.seal(normal, ADDRESS), sealer.lookup_hash(normal, ADDRESS),
            now if confirmed else None, now,
        )
        await link_contact(conn, contact_id, [account_id], [], now)
    return info


@dataclass(frozen=True)
class Removed:
    links: int
    contact_gone: bool
    withdrawn: int


async def remove_address(people: People, address: str, account_id: int | None = None) -> Removed:
    """The address no longer receives for ``account_id`` (None: for any account); when it then
    receives for nothing, the contact goes and its unsent mail is withdrawn."""
    normal = normalise_address(address)
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        contact_id = await conn.fetchval(
            "SELECT id FROM contacts WHERE address_hash = $1",
            people.sealer.lookup_hash(normal, ADDRESS),
        )
        if contact_id is None:
            raise InputError("この連絡先は登録されていません (unknown contact)")
        if account_id is not None:
            await account_info(conn, people, account_id)
        status = await conn.execute(
            "DELETE FROM contact_accounts WHERE contact_id = $1 "
            "AND ($2::bigint IS NULL OR account_id = $2)",
            contact_id, account_id,
        )
        links = int(status.split()[-1])
        if account_id is not None and links == 0:
            raise InputError(
                f"この連絡先はアカウント {account_id} の連絡先ではありません (not linked)"
            )
        if account_id is None:
            await conn.execute("DELETE FROM contact_groups WHERE contact_id = $1", contact_id)
        gone, withdrawn = await drop_orphans(conn, [contact_id], now)
    return Removed(links, gone == 1, withdrawn)


async def _school(db: asyncpg.Pool | asyncpg.Connection, school_id: int) -> Organisation:
    row = await db.fetchrow("SELECT code FROM organisations WHERE id = $1", school_id)
    return await find_organisation(db, row["code"])


async def rename_school(people: People, key: str, new_name: str) -> Organisation:
    new_name = new_name.strip()
    if not new_name or len(new_name) > 100:
        raise InputError("学校名は 1〜100 文字です (name: 1-100 characters)")
    async with people.pool.acquire() as conn, conn.transaction():
        org = await find_organisation(conn, key)
        try:
            await conn.execute(
                "UPDATE organisations SET name = $2 WHERE id = $1", org.id, new_name
            )
        except asyncpg.UniqueViolationError:
            raise InputError(f"名前「{new_name}」は既に使われています (name in use)") from None
    return replace(org, name=new_name)


async def close_school(people: People, key: str) -> tuple[Organisation, int]:
    """Close a school (閉校・統合) and every active account of it; returns it and how many
    accounts were closed. The board cannot be closed this way."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        org = await find_organisation(conn, key)
        if org.parent_id is None and org.kind.value == "board":
            raise InputError("教育委員会は閉じられません (a board cannot be closed)")
        closed = await conn.fetchval(
            "UPDATE organisations SET closed_at = $2 WHERE id = $1 AND closed_at IS NULL "
            "RETURNING closed_at",
            org.id, now,
        )
        if closed is None:
            raise InputError(f"{org.name}は既に閉じています (already closed)")
        status = await conn.execute(
            "UPDATE accounts SET state = 'closed', closed_reason = 'school_closed', "
            "closed_at = $2 WHERE school_id = $1 AND state = 'active'",
            org.id, now,
        )
    return org, int(status.split()[-1])
