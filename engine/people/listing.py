"""Accounts as the staff screens list them: a school's (or a class's) active accounts a page
at a time, with how many contacts each has and how many of those are confirmed, and one
account's contacts with their registration state, addresses masked.

Names are sealed, so a search by name opens the names of the school's (or class's) active
accounts and filters them here (a school is a few thousand accounts at most); a list without
a name is paginated by SQL. The callers check the rights first (engine/staff/roster.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.people.registration import masked
from engine.people.store import ACCOUNT_NAME, ADDRESS, People
from engine.platform.errors import InputError

_LIST_SQL = """
SELECT a.id, a.kind, g.grade, c.name AS class_name, a.number, a.name_sealed,
       (SELECT count(*) FROM contact_accounts ca WHERE ca.account_id = a.id) AS contacts,
       (SELECT count(*) FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
        WHERE ca.account_id = a.id AND k.state = 'active' AND k.confirmed_at IS NOT NULL)
           AS confirmed,
       count(*) OVER () AS total
FROM accounts a LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id
WHERE a.state = 'active' AND a.school_id = $1
  AND ($2::bigint IS NULL OR a.class_id = $2) AND ($3::int IS NULL OR a.number = $3)
  AND (NOT $4::bool OR NOT EXISTS (
       SELECT 1 FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
       WHERE ca.account_id = a.id AND k.state = 'active' AND k.confirmed_at IS NOT NULL))
ORDER BY a.kind, g.grade NULLS LAST, c.name NULLS LAST, a.number NULLS LAST, a.id
"""

_CONTACTS_SQL = """
SELECT ca.account_id, k.id, k.address_sealed, k.state, k.confirmed_at, k.invited_at
FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
WHERE ca.account_id = ANY($1::bigint[]) ORDER BY ca.account_id, k.id
"""


@dataclass(frozen=True)
class AccountLine:
    id: int
    kind: str
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    contacts: int
    confirmed: int


@dataclass(frozen=True)
class AccountPage:
    accounts: list[AccountLine]
    total: int


@dataclass(frozen=True)
class ContactLine:
    id: int
    masked: str
    # 登録済み (confirmed, receives) / 未確認 (not confirmed yet) / 配信停止 (left)
    state: str
    confirmed_at: datetime | None
    invited_at: datetime | None


def _line(r: asyncpg.Record, name: str) -> AccountLine:
    return AccountLine(r["id"], r["kind"], r["grade"], r["class_name"], r["number"], name,
                       r["contacts"], r["confirmed"])


async def list_accounts(
    people: People,
    school_id: int,
    class_id: int | None = None,
    name: str = "",
    number: int | None = None,
    limit: int = 50,
    offset: int = 0,
    unregistered: bool = False,
) -> AccountPage:
    """The active accounts of a school (of one class, with one number, whose name contains
    ``name``; with ``unregistered`` only those no confirmed contact receives for), a page of
    them and how many there are."""
    name = name.strip()
    where = (school_id, class_id, number, unregistered)
    if not name:
        rows = await people.pool.fetch(_LIST_SQL + " LIMIT $5 OFFSET $6", *where, limit, offset)
        total = rows[0]["total"] if rows else 0
        if not rows and offset:
            total = len(await people.pool.fetch(_LIST_SQL, *where))
        opened = people.sealer.open
        return AccountPage([_line(r, opened(r["name_sealed"], ACCOUNT_NAME)) for r in rows],
                           total)
    if len(name) > 100:
        raise InputError("氏名は 100 文字までで検索してください (name too long)")
    wanted = "".join(name.split())
    found = []
    for r in await people.pool.fetch(_LIST_SQL, *where):
        plain = people.sealer.open(r["name_sealed"], ACCOUNT_NAME)
        if wanted in "".join(plain.split()):
            found.append(_line(r, plain))
    return AccountPage(found[offset:offset + limit], len(found))


def _state(r: asyncpg.Record) -> str:
    if r["state"] != "active":
        return "配信停止"
    return "登録済み" if r["confirmed_at"] is not None else "未確認"


async def account_contacts(people: People, account_id: int) -> list[ContactLine]:
    """The account's contacts, masked ("ta…@docomo.ne.jp"), with their state."""
    return (await contacts_of(people, [account_id])).get(account_id, [])


async def contacts_of(people: People, account_ids: list[int]) -> dict[int, list[ContactLine]]:
    """The contacts of each of ``account_ids`` (a page of a list), as ``account_contacts``."""
    found: dict[int, list[ContactLine]] = {}
    for r in await people.pool.fetch(_CONTACTS_SQL, account_ids):
        found.setdefault(r["account_id"], []).append(ContactLine(
            r["id"], masked(people.sealer.open(r["address_sealed"], ADDRESS)), _state(r),
            r["confirmed_at"], r["invited_at"]))
    return found


async def contact_address(people: People, account_id: int, contact_id: int) -> str:
    """The address of one of the account's contacts (for removing it by id: the screens never
    show it); InputError when the contact is not the account's."""
    sealed = await people.pool.fetchval(
        "SELECT k.address_sealed FROM contact_accounts ca JOIN contacts k "
        "ON k.id = ca.contact_id WHERE ca.account_id = $1 AND ca.contact_id = $2",
        account_id, contact_id,
    )
    if sealed is None:
        raise InputError("この連絡先はこのアカウントの連絡先ではありません (not linked)")
    return people.sealer.open(sealed, ADDRESS)
