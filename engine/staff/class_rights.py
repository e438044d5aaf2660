"""Grades and classes within the actor's rights: the staff screen of a school's classes, the
teachers' view of their own classes' accounts, and ``mamoru schools classes ... --as LOGIN``.

    board                 the classes of its own board's schools (another board's: unknown)
    school administrator  their own school's classes (another school: refused)
    teacher               changes nothing; sees the accounts of the classes given to them

The same rule as every other roster change (``rights.require_admin_of``, ``roster.py``). The
changes themselves are ``engine.people.class_units``; the callers audit them
(``Staff.audited``) under ``class.add``, ``class.rename`` and ``class.remove``.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from engine.people import class_units as cu
from engine.people.directory import current_year
from engine.people.listing import AccountPage, list_accounts
from engine.people.store import People
from engine.staff.models import Principal, RightsError, Role
from engine.staff.rights import require_admin_of, tenant, unknown

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


async def may_manage_school(db: Db, actor: Principal, school_id: int) -> None:
    """RightsError unless ``actor`` administers the school; another board's is unknown."""
    await require_admin_of(db, actor, school_id)


async def class_school(db: Db, actor: Principal, class_id: int) -> int:
    """The school of class ``class_id`` if it is in the actor's board; InputError for an
    unknown class (or another board's)."""
    school: int | None = await db.fetchval(
        "SELECT g.school_id FROM classes c JOIN grades g ON g.id = c.grade_id "
        "JOIN organisations o ON o.id = g.school_id WHERE c.id = $1 "
        "AND ($2::bigint IS NULL OR o.id = $2 OR o.parent_id = $2)",
        class_id, tenant(actor),
    )
    if school is None:
        raise unknown("組", class_id)
    return school


async def may_change_class(db: Db, actor: Principal, class_id: int) -> None:
    """RightsError unless ``actor`` administers the class's school; InputError for an unknown
    class (or another board's)."""
    await require_admin_of(db, actor, await class_school(db, actor, class_id))


async def may_view_class(db: Db, actor: Principal, class_id: int) -> None:
    """A teacher: one of their own classes; an administrator: a class of their school(s)."""
    if actor.role is Role.TEACHER:
        if class_id not in actor.class_ids:
            raise RightsError("受け持ちでない組の名簿は見られません (not your class)")
        return
    await may_change_class(db, actor, class_id)


async def classes_of(people: People, actor: Principal, school_id: int) -> list[cu.GradeLine]:
    """The school's grades and classes of the current year with their accounts."""
    await may_manage_school(people.pool, actor, school_id)
    year = await current_year(people.pool, people.clock.now(), create=False)
    return await cu.school_classes(people.pool, school_id, year)


async def add_class(people: People, actor: Principal, school_id: int, grade: int,
                    name: str) -> cu.ClassPlace:
    await may_manage_school(people.pool, actor, school_id)
    return await cu.add_class(people, school_id, grade, name)


async def rename_class(people: People, actor: Principal, class_id: int,
                       name: str) -> cu.ClassPlace:
    await may_change_class(people.pool, actor, class_id)
    return await cu.rename_class(people, class_id, name)


async def remove_class(people: People, actor: Principal, class_id: int) -> cu.RemovedClass:
    await may_change_class(people.pool, actor, class_id)
    return await cu.remove_class(people, class_id)


async def class_accounts(
    people: People, actor: Principal, class_id: int, unregistered: bool = False,
    limit: int = 200, offset: int = 0,
) -> AccountPage:
    """The active accounts of one class the actor may see (``may_view_class``)."""
    await may_view_class(people.pool, actor, class_id)
    school = await class_school(people.pool, actor, class_id)
    return await list_accounts(people, school, class_id, limit=limit, offset=offset,
                               unregistered=unregistered)
