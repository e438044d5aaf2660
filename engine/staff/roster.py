"""The roster within the actor's rights: the single changes of ``engine.people.changes`` and
the registration rate, for the staff screens and ``mamoru ... --as LOGIN``.

Changing the roster is for the board (its own board's schools) and a school's
administrators (their own school), as every other administration (``rights.require_admin_of``);
a teacher may change nothing but sees the rate of their own classes. Another board's account
or school is answered as an unknown one. The callers audit the change (``Staff.audited``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from engine.people.directory import find_organisation
from engine.people.models import Organisation, OrgKind
from engine.people.rate import RateRow, registration_rate
from engine.platform.errors import InputError
from engine.staff.models import Principal, Role
from engine.staff.rights import require_admin_of, require_board, tenant, unknown

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


async def may_change_account(db: Db, actor: Principal, account_id: int) -> None:
    """RightsError unless ``actor`` administers the active account's school; InputError for
    an unknown account (or another board's)."""
    school_id: int | None = await db.fetchval(
        "SELECT a.school_id FROM accounts a JOIN organisations o ON o.id = a.school_id "
        "WHERE a.id = $1 AND a.state = 'active' "
        "AND ($2::bigint IS NULL OR o.id = $2 OR o.parent_id = $2)",
        account_id, tenant(actor),
    )
    if school_id is None:
        raise unknown("アカウント", account_id)
    await require_admin_of(db, actor, school_id)


async def may_change_school(db: Db, actor: Principal, key: str) -> Organisation:
    """The school ``key`` names, if ``actor`` administers it (another board's is unknown)."""
    org = await find_organisation(db, key, tenant(actor))
    await require_admin_of(db, actor, org.id)
    return org


async def rate_for(db: Db, actor: Principal, school: str | None = None) -> list[RateRow]:
    """The registration rate of what ``actor`` may see: the board's schools (or ``school``),
    a school's own, a teacher's own classes."""
    board = tenant(actor)
    if school is not None:
        org = await find_organisation(db, school, board)
        if actor.role is not Role.BOARD and actor.organisation_id != org.id:
            # Worded like a name nobody registered: no hint that the school exists.
            raise InputError(f"学校「{school}」は登録されていません (unknown school).")
        schools: list[int] | None = [org.id]
    elif actor.role is Role.BOARD:
        schools = None if board is None else [
            r["id"] for r in await db.fetch(
                "SELECT id FROM organisations WHERE parent_id = $1", board
            )
        ]
    elif actor.organisation_id is not None:
        schools = [actor.organisation_id]
    else:
        raise InputError("学校が分かりません (no school)")
    classes = sorted(actor.class_ids) if actor.role is Role.TEACHER else None
    return await registration_rate(db, schools, classes)


async def may_import(db: Db, actor: Principal, school_keys: Iterable[str]) -> None:
    """Every school an accounts CSV names must be one ``actor`` administers: another board's
    or an unknown school refuses the whole file (the import itself would look at every
    board's schools), as does another school for a school's administrator."""
    board = tenant(actor)
    for key in sorted(set(school_keys)):
        try:
            org = await find_organisation(db, key, board)
        except InputError:
            raise InputError(
                f"学校「{key[:40]}」は登録されていないか、管理できる学校ではありません "
                f"(unknown school or not yours): ファイルは取り込んでいません"
            ) from None
        await require_admin_of(db, actor, org.id)


@dataclass(frozen=True)
class SchoolLine:
    id: int
    code: str
    name: str
    kind: OrgKind
    final_grade: int
    closed_at: datetime | None
    accounts: int


async def schools_of(db: Db, actor: Principal) -> list[SchoolLine]:
    """The board's schools (closed ones too) with their active accounts: the board only."""
    require_board(actor)
    rows = await db.fetch(
        "SELECT o.id, o.code, o.name, o.kind, o.final_grade, o.closed_at, "
        "(SELECT count(*) FROM accounts a WHERE a.school_id = o.id AND a.state = 'active') "
        "AS accounts FROM organisations o WHERE o.kind <> 'board' "
        "AND ($1::bigint IS NULL OR o.parent_id = $1) ORDER BY o.closed_at IS NOT NULL, o.code",
        tenant(actor),
    )
    return [SchoolLine(r["id"], r["code"], r["name"], OrgKind(r["kind"]), r["final_grade"],
                       r["closed_at"], r["accounts"]) for r in rows]


async def board_code(db: Db, actor: Principal) -> str | None:
    """The code of the actor's board (for adding a school to it); the board only."""
    require_board(actor)
    board = tenant(actor)
    if board is None:
        return None
    code: str | None = await db.fetchval("SELECT code FROM organisations WHERE id = $1", board)
    return code
