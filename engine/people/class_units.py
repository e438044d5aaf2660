"""A school's grades and classes of the current school year, one change at a time: list them
with their active accounts, add a class (and its grade), rename a class, remove an empty one.

Grades and classes are otherwise made by an accounts import, a class move or the year's
rollover (``directory.ensure_classes``); these are for the staff screen that manages them
(``/staff/roster/classes``) and ``mamoru schools classes``. Each change runs in one
transaction and changes nothing when refused. The callers check the rights first
(``engine/staff/class_rights.py``) and audit the change.

Removing a class: refused while an active account is in it (move them first). Closed accounts
that were in it keep their school and grade and lose the class; a teacher's assignment to it
goes with it (``staff_classes`` cascades); both counts are returned so the caller can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from engine.people.directory import Executor, current_year, ensure_classes, parse_class
from engine.people.store import People
from engine.platform.errors import InputError

_GRADES_SQL = """
SELECT g.id, g.grade,
       (SELECT count(*) FROM accounts a WHERE a.grade_id = g.id AND a.state = 'active')
           AS accounts
FROM grades g WHERE g.school_id = $1 AND g.year = $2 ORDER BY g.grade
"""

_CLASSES_SQL = """
SELECT c.id, c.grade_id, c.name,
       (SELECT count(*) FROM accounts a WHERE a.class_id = c.id AND a.state = 'active')
           AS accounts,
       (SELECT count(*) FROM staff_classes sc WHERE sc.class_id = c.id) AS teachers
FROM classes c JOIN grades g ON g.id = c.grade_id
WHERE g.school_id = $1 AND g.year = $2 ORDER BY g.grade, length(c.name), c.name
"""

# The class, its grade and school, locked: a class move that would put an account into it
# waits (its foreign key check needs the row) until the removal or rename is decided.
_CLASS_SQL = """
SELECT c.id, c.name, g.id AS grade_id, g.grade, g.school_id, o.name AS school_name
FROM classes c JOIN grades g ON g.id = c.grade_id JOIN organisations o ON o.id = g.school_id
WHERE c.id = $1 FOR UPDATE OF c
"""


@dataclass(frozen=True)
class ClassLine:
    id: int
    grade_id: int
    name: str
    accounts: int
    teachers: int


@dataclass(frozen=True)
class GradeLine:
    """One grade of the year: its active accounts (also those in no class) and classes."""

    id: int
    grade: int
    accounts: int
    classes: list[ClassLine]

    @property
    def without_class(self) -> int:
        return self.accounts - sum(c.accounts for c in self.classes)


@dataclass(frozen=True)
class ClassPlace:
    """A class with its grade and school (what a change was made to)."""

    id: int
    grade: int
    name: str
    school_id: int
    school_name: str

    @property
    def label(self) -> str:
        return f"{self.grade}年{self.name}組"


@dataclass(frozen=True)
class RemovedClass:
    place: ClassPlace
    closed_accounts: int
    teachers: int


async def school_classes(db: Executor, school_id: int, year: int) -> list[GradeLine]:
    """The school's grades of ``year`` with their classes and active accounts."""
    classes = await db.fetch(_CLASSES_SQL, school_id, year)
    grades = await db.fetch(_GRADES_SQL, school_id, year)
    return [
        GradeLine(g["id"], g["grade"], g["accounts"], [
            ClassLine(c["id"], c["grade_id"], c["name"], c["accounts"], c["teachers"])
            for c in classes if c["grade_id"] == g["id"]
        ])
        for g in grades
    ]


async def class_school(db: Executor, class_id: int) -> int | None:
    """The school of class ``class_id`` (None: no such class)."""
    school: int | None = await db.fetchval(
        "SELECT g.school_id FROM classes c JOIN grades g ON g.id = c.grade_id WHERE c.id = $1",
        class_id,
    )
    return school


async def _place(conn: asyncpg.Connection, class_id: int) -> ClassPlace:
    r = await conn.fetchrow(_CLASS_SQL, class_id)
    if r is None:
        raise InputError(f"組 {class_id} はありません (unknown class {class_id})")
    return ClassPlace(r["id"], r["grade"], r["name"], r["school_id"], r["school_name"])


async def add_class(people: People, school_id: int, grade: int, name: str) -> ClassPlace:
    """Add class ``name`` to ``grade`` of the school in the current year (the grade too, when
    it has none yet); refused when the grade is outside the school's or the class exists."""
    plain = parse_class(name)
    async with people.pool.acquire() as conn, conn.transaction():
        school = await conn.fetchrow(
            "SELECT name, final_grade, closed_at FROM organisations WHERE id = $1 "
            "AND kind <> 'board' FOR SHARE", school_id,
        )
        if school is None:
            raise InputError(f"学校 {school_id} はありません (unknown school)")
        if school["closed_at"] is not None:
            raise InputError(f"{school['name']}は閉校しています (the school is closed)")
        if not 1 <= grade <= school["final_grade"]:
            raise InputError(
                f"{school['name']}の学年は 1〜{school['final_grade']} です (grade)"
            )
        year = await current_year(conn, people.clock.now())
        exists = await conn.fetchval(
            "SELECT 1 FROM classes c JOIN grades g ON g.id = c.grade_id "
            "WHERE g.school_id = $1 AND g.year = $2 AND g.grade = $3 AND c.name = $4",
            school_id, year, grade, plain,
        )
        if exists:
            raise InputError(
                f"{grade}年{plain}組は既にあります (class already exists)"
            )
        places = await ensure_classes(conn, year, [(school_id, grade, plain)])
        class_id = places[(school_id, grade, plain)][1]
        assert class_id is not None
        return ClassPlace(class_id, grade, plain, school_id, school["name"])


async def rename_class(people: People, class_id: int, new_name: str) -> ClassPlace:
    """Give a class another name in its grade (its accounts and teachers stay with it)."""
    plain = parse_class(new_name)
    async with people.pool.acquire() as conn, conn.transaction():
        place = await _place(conn, class_id)
        if plain == place.name:
            raise InputError(f"組の名前が同じです (「{plain}」: unchanged)")
        try:
            await conn.execute("UPDATE classes SET name = $2 WHERE id = $1", class_id, plain)
        except asyncpg.UniqueViolationError:
            raise InputError(
                f"{place.grade}年{plain}組は既にあります (class already exists)"
            ) from None
        return ClassPlace(class_id, place.grade, plain, place.school_id, place.school_name)


async def remove_class(people: People, class_id: int) -> RemovedClass:
    """Remove a class that no active account is in (else refused, saying how many are)."""
    async with people.pool.acquire() as conn, conn.transaction():
        place = await _place(conn, class_id)
        active = await conn.fetchval(
            "SELECT count(*) FROM accounts WHERE class_id = $1 AND state = 'active'", class_id
        )
        if active:
            raise InputError(
                f"{place.label}には {active} 人のアカウントがあるため削除できません。"
                f"先に別の組へ移してください (the class has {active} accounts: move them first)"
            )
        teachers = await conn.fetchval(
            "SELECT count(*) FROM staff_classes WHERE class_id = $1", class_id
        )
        status = await conn.execute(
            "UPDATE accounts SET class_id = NULL WHERE class_id = $1 AND state <> 'active'",
            class_id,
        )
        await conn.execute("DELETE FROM classes WHERE id = $1", class_id)
        return RemovedClass(place, int(status.split()[-1]), int(teachers))
