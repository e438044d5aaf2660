"""Rights: may this actor see, count or send to this school, grade, class, group or account?

    board                 everything of its own board (a board is a tenant)
    school administrator  its own school: the school, its grades, classes, accounts and the
                          groups the school owns (not the board's groups: they reach other
                          schools' people)
    teacher               the classes and groups given to them, nothing else
    API key               as the board or its school's administrator
    command line          every board (the operator of the installation)

Every endpoint asks here. Unknown ids are bad input (``InputError``, nothing changes); known
ones outside the rights are ``RightsError``. A broadcast is visible to its board, to its
school's administrators and to the teacher who made it; anything else is answered as if it
did not exist (``NotFoundError``).

The tenant boundary comes first: whatever belongs to another board (its schools, grades,
classes, groups, accounts, broadcasts, staff, keys, audit entries, templates) is answered
exactly as an unknown id is, never as "not within your rights", so that one board cannot
probe another's ids. A school belongs to the board in its ``parent_id``. What the command
line made without ``--as`` (broadcasts without an owner, audit entries without an
organisation) is the board's while the database has one board, and nobody's once it has
several.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from engine.people import Audience
from engine.platform.errors import InputError
from engine.staff.models import ActorKind, NotFoundError, Principal, RightsError, Role

DENIED = "この配信先に送る権限がありません (not within your rights: {what})"

#: True while the database has at most one board: then what the command line made without an
#: owner is that board's.
SINGLE_BOARD = "((SELECT count(*) FROM organisations WHERE kind = 'board') <= 1)"


def of_board(column: str, param: str) -> str:
    """SQL: the organisation in ``column`` is the board ``param`` or one of its schools."""
    return f"{column} IN (SELECT id FROM organisations WHERE id = {param} OR parent_id = {param})"


def tenant(actor: Principal) -> int | None:
    """The board whose things ``actor`` may touch; None: every board (the command line, or a
    database without a board)."""
    return None if actor.kind is ActorKind.CLI else actor.board_id


def _forbid(what: str) -> RightsError:
    return RightsError(DENIED.format(what=what))


def unknown(label: str, ident: int) -> InputError:
    """The answer for an id that does not exist, or exists in another board (the same)."""
    return InputError(f"{label} {ident} はありません (unknown {_EN[label]} {ident})")


async def _owners(
    db: asyncpg.Pool | asyncpg.Connection, sql: str, ids: Iterable[int], label: str,
    board: int | None,
) -> dict[int, int]:
    """id -> owning school (or board) for ``ids``, only those of ``board`` (None: any);
    InputError naming the first unknown one (another board's is unknown)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch(
        f"SELECT x.id, x.owner FROM ({sql}) x JOIN organisations o ON o.id = x.owner "
        "WHERE $2::bigint IS NULL OR o.id = $2 OR o.parent_id = $2",
        wanted, board,
    )
    found = {r["id"]: r["owner"] for r in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise unknown(label, missing[0])
    return found


_EN = {"学校": "school", "学年": "grade", "組": "class", "グループ": "group",
       "アカウント": "account", "教育委員会": "board"}


async def check_audience(
    db: asyncpg.Pool | asyncpg.Connection, actor: Principal, audience: Audience
) -> None:
    """InputError for unknown ids (and another board's), RightsError for any part of the
    actor's board outside the actor's rights."""
    board = tenant(actor)
    boards = await _owners(
        db, "SELECT id, id AS owner FROM organisations WHERE kind = 'board' AND id = ANY($1)",
        audience.boards, "教育委員会", board,
    )
    schools = await _owners(
        db, "SELECT id, id AS owner FROM organisations WHERE kind <> 'board' AND id = ANY($1)",
        audience.schools, "学校", board,
    )
    grades = await _owners(
        db, "SELECT id, school_id AS owner FROM grades WHERE id = ANY($1)", audience.grades,
        "学年", board,
    )
    classes = await _owners(
        db,
        "SELECT c.id, g.school_id AS owner FROM classes c JOIN grades g ON g.id = c.grade_id "
        "WHERE c.id = ANY($1)",
        audience.classes, "組", board,
    )
    groups = await _owners(
        db, "SELECT id, owner_id AS owner FROM groups WHERE id = ANY($1)", audience.groups,
        "グループ", board,
    )
    accounts = await _owners(
        db, "SELECT id, school_id AS owner FROM accounts WHERE state = 'active' AND id = ANY($1)",
        audience.accounts, "アカウント", board,
    )
    if actor.role is Role.BOARD:
        return
    if boards:
        raise _forbid("教育委員会の全体 / the whole board")
    if actor.role is Role.TEACHER:
        if schools or grades or accounts:
            raise _forbid("教員は受け持ちの組とグループだけに送れます / teachers send to their "
                          "own classes and groups only")
        other = set(classes) - actor.class_ids
        if other:
            raise _forbid(f"受け持ちでない組 {min(other)} / class {min(other)} is not yours")
        other = set(groups) - actor.group_ids
        if other:
            raise _forbid(f"受け持ちでないグループ {min(other)} / group {min(other)}")
        return
    for label, owners in (("学校", schools), ("学年", grades), ("組", classes),
                          ("グループ", groups), ("アカウント", accounts)):
        other = {i for i, owner in owners.items() if owner != actor.organisation_id}
        if other:
            raise _forbid(f"他校の{label} {min(other)} / {_EN[label]} {min(other)} of another "
                          f"school")


def visibility(actor: Principal) -> tuple[bool, int | None, int | None, int | None]:
    """SQL parameters (all, organisation_id, staff_id, board_id) of the broadcasts ``actor``
    sees, for ``visible_sql``."""
    if actor.kind is ActorKind.CLI:
        return True, None, None, None
    if actor.role is Role.BOARD:
        return False, None, None, actor.board_id
    if actor.role is Role.TEACHER:
        return False, None, actor.id, None
    return False, actor.organisation_id, None, None


def visible_sql(first: int, owners: str = "o") -> str:
    """SQL: the broadcast whose ``broadcast_owners`` row is ``owners`` (LEFT JOINed: NULL for
    the command line's) is visible, with ``visibility``'s four values at ``$first``..."""
    a, org, staff, board = (f"${first + i}" for i in range(4))
    return (
        f"({a} OR {owners}.organisation_id = {org} OR {owners}.staff_id = {staff} "
        f"OR ({board}::bigint IS NOT NULL AND ("
        f"{of_board(f'{owners}.organisation_id', board)} "
        f"OR ({owners}.broadcast_id IS NULL AND {SINGLE_BOARD}))))"
    )


def require_board(actor: Principal) -> None:
    if actor.role is not Role.BOARD:
        raise RightsError("教育委員会の職員だけができる操作です (board staff only)")


async def check_organisation(
    db: asyncpg.Pool | asyncpg.Connection, actor: Principal, organisation_id: int
) -> str:
    """The kind of ``organisation_id`` ('board', 'elementary', ...) if it exists within the
    actor's board; else the InputError of an unknown organisation."""
    board = tenant(actor)
    kind: str | None = await db.fetchval(
        "SELECT kind FROM organisations WHERE id = $1 "
        "AND ($2::bigint IS NULL OR id = $2 OR parent_id = $2)",
        organisation_id, board,
    )
    if kind is None:
        raise InputError(f"学校 {organisation_id} はありません (unknown organisation)")
    return kind


async def require_admin_of(
    db: asyncpg.Pool | asyncpg.Connection, actor: Principal, organisation_id: int
) -> None:
    """The board of ``organisation_id``, or an administrator of it. Another board's
    organisation is unknown (InputError) to the board; a school's administrator is refused
    any school but their own (RightsError, whichever board it is in)."""
    if actor.role is Role.BOARD:
        await check_organisation(db, actor, organisation_id)
        return
    if actor.role is Role.SCHOOL and actor.organisation_id == organisation_id:
        return
    raise RightsError("この学校を管理する権限がありません (not an administrator of this school)")


def not_found(what: str) -> NotFoundError:
    return NotFoundError(f"{what}はありません (not found)")
