"""Rights: may this actor see, count or send to this school, grade, class, group or account?

    board                 everything of its board
    school administrator  its own school: the school, its grades, classes, accounts and the
                          groups the school owns (not the board's groups: they reach other
                          schools' people)
    teacher               the classes and groups given to them, nothing else
    API key               as the board or its school's administrator

Every endpoint asks here. Unknown ids are bad input (``InputError``, nothing changes); known
ones outside the rights are ``RightsError``. A broadcast is visible to the board, to its
school's administrators and to the teacher who made it; anything else is answered as if it
did not exist (``NotFoundError``).
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from engine.people import Audience
from engine.platform.errors import InputError
from engine.staff.models import NotFoundError, Principal, RightsError, Role

DENIED = "この配信先に送る権限がありません (not within your rights: {what})"


def _forbid(what: str) -> RightsError:
    return RightsError(DENIED.format(what=what))


async def _owners(
    db: asyncpg.Pool | asyncpg.Connection, sql: str, ids: Iterable[int], label: str
) -> dict[int, int]:
    """id -> owning school (or board) for ``ids``; InputError naming the first unknown one."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch(sql, wanted)
    found = {r["id"]: r["owner"] for r in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InputError(f"{label} {missing[0]} はありません (unknown {_EN[label]} {missing[0]})")
    return found


_EN = {"学校": "school", "学年": "grade", "組": "class", "グループ": "group",
       "アカウント": "account", "教育委員会": "board"}


async def check_audience(
    db: asyncpg.Pool | asyncpg.Connection, actor: Principal, audience: Audience
) -> None:
    """InputError for unknown ids, RightsError for any part outside the actor's rights."""
    boards = await _owners(
        db, "SELECT id, id AS owner FROM organisations WHERE kind = 'board' AND id = ANY($1)",
        audience.boards, "教育委員会",
    )
    schools = await _owners(
        db, "SELECT id, id AS owner FROM organisations WHERE kind <> 'board' AND id = ANY($1)",
        audience.schools, "学校",
    )
    grades = await _owners(
        db, "SELECT id, school_id AS owner FROM grades WHERE id = ANY($1)", audience.grades, "学年"
    )
    classes = await _owners(
        db,
        "SELECT c.id, g.school_id AS owner FROM classes c JOIN grades g ON g.id = c.grade_id "
        "WHERE c.id = ANY($1)",
        audience.classes, "組",
    )
    groups = await _owners(
        db, "SELECT id, owner_id AS owner FROM groups WHERE id = ANY($1)", audience.groups,
        "グループ",
    )
    accounts = await _owners(
        db, "SELECT id, school_id AS owner FROM accounts WHERE state = 'active' AND id = ANY($1)",
        audience.accounts, "アカウント",
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


def visibility(actor: Principal) -> tuple[bool, int | None, int | None]:
    """SQL parameters (all, organisation_id, staff_id) of what broadcasts ``actor`` sees."""
    if actor.role is Role.BOARD:
        return True, None, None
    if actor.role is Role.TEACHER:
        return False, None, actor.id
    return False, actor.organisation_id, None



def may_see(actor: Principal, organisation_id: int | None, staff_id: int | None) -> bool:
    everything, org, own = visibility(actor)
    return everything or (org is not None and org == organisation_id) or (
        own is not None and own == staff_id
    )


def require_board(actor: Principal) -> None:
    if actor.role is not Role.BOARD:
        raise RightsError("教育委員会の職員だけができる操作です (board staff only)")


def require_admin_of(actor: Principal, organisation_id: int) -> None:
    """The board, or an administrator of ``organisation_id``."""
    if actor.role is Role.BOARD:
        return
    if actor.role is Role.SCHOOL and actor.organisation_id == organisation_id:
        return
    raise RightsError("この学校を管理する権限がありません (not an administrator of this school)")


def not_found(what: str) -> NotFoundError:
    return NotFoundError(f"{what}はありません (not found)")
