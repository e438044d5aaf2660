"""The organisation an actor may name in an audience, with its ids: schools, grades, classes
and groups (``GET /api/staff/organisation``), so that an application builds an audience
without reading an old broadcast.

Exactly what ``engine.staff.rights.check_audience`` accepts for the actor (the same rule as
``engine.staff.audiences.choices``, which the compose screen shows):

    board                the board, its schools, their grades and classes of the current
                         school year, and the groups of the board and of its schools
    school administrator their school, its grades and classes of the current year, the groups
                         the school owns (not the board's: they reach other schools)
    teacher              their own classes (with the grade and school each is in) and groups
    API key              as the board or its school's administrator

Nothing of another board ever appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from engine.people.directory import current_year
from engine.staff.models import Principal, Role
from engine.staff.rights import tenant


@dataclass(frozen=True)
class OrgUnit:
    """A school (or the board): ``kind`` is board, elementary, junior_high, ..."""

    id: int
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class GradeUnit:
    id: int
    school_id: int
    grade: int
    year: int


@dataclass(frozen=True)
class ClassUnit:
    id: int
    school_id: int
    grade_id: int
    grade: int
    name: str


@dataclass(frozen=True)
class GroupUnit:
    id: int
    owner_id: int
    name: str
    kind: str


@dataclass(frozen=True)
class Organisation:
    year: int
    board: OrgUnit | None = None
    schools: list[OrgUnit] = field(default_factory=list)
    grades: list[GradeUnit] = field(default_factory=list)
    classes: list[ClassUnit] = field(default_factory=list)
    groups: list[GroupUnit] = field(default_factory=list)


_CLASSES = """
SELECT c.id, g.school_id, c.grade_id, g.grade, c.name
FROM classes c JOIN grades g ON g.id = c.grade_id JOIN organisations o ON o.id = g.school_id
WHERE {where} ORDER BY o.code, g.grade, c.name
"""
_GRADES = """
SELECT g.id, g.school_id, g.grade, g.year FROM grades g JOIN organisations o ON o.id = g.school_id
WHERE {where} ORDER BY o.code, g.grade
"""
_GROUPS = """
SELECT g.id, g.owner_id, g.name, g.kind FROM groups g JOIN organisations o ON o.id = g.owner_id
WHERE {where} ORDER BY o.kind <> 'board', o.code, g.name
"""
_ORGS = (
    "SELECT id, code, name, kind FROM organisations o WHERE {where} "
    "ORDER BY o.kind <> 'board', o.code"
)


def _orgs(rows: list[asyncpg.Record]) -> list[OrgUnit]:
    return [OrgUnit(r["id"], r["code"], r["name"], r["kind"]) for r in rows]


async def organisation(pool: asyncpg.Pool, actor: Principal, now: datetime) -> Organisation:
    """What ``actor`` may send to, with ids (see the module docstring)."""
    year = await current_year(pool, now, create=False)
    if actor.role is Role.TEACHER:
        classes = await pool.fetch(_CLASSES.format(where="c.id = ANY($1::bigint[])"),
                                   sorted(actor.class_ids))
        grade_ids = sorted({r["grade_id"] for r in classes})
        school_ids = sorted({r["school_id"] for r in classes})
        return Organisation(
            year,
            schools=_orgs(await pool.fetch(_ORGS.format(where="o.id = ANY($1::bigint[])"),
                                           school_ids)),
            grades=_grades(await pool.fetch(_GRADES.format(where="g.id = ANY($1::bigint[])"),
                                            grade_ids)),
            classes=_classes(classes),
            groups=_groups(await pool.fetch(_GROUPS.format(where="g.id = ANY($1::bigint[])"),
                                            sorted(actor.group_ids))),
        )
    if actor.role is Role.BOARD:
        board_id = tenant(actor)
        if board_id is None:
            return Organisation(year)
        orgs = _orgs(await pool.fetch(_ORGS.format(where="o.id = $1 OR o.parent_id = $1"),
                                      board_id))
        board = next((o for o in orgs if o.kind == "board"), None)
        schools = [o for o in orgs if o.kind != "board"]
        in_schools = "o.parent_id = $1 AND o.kind <> 'board'"
        owners = "o.id = $1 OR o.parent_id = $1"
        org_id = board_id
    else:
        if actor.organisation_id is None:
            return Organisation(year)
        org_id = actor.organisation_id
        board = None
        schools = _orgs(await pool.fetch(_ORGS.format(where="o.id = $1"), org_id))
        in_schools = owners = "o.id = $1"
    grades = await pool.fetch(_GRADES.format(where=f"({in_schools}) AND g.year = $2"),
                              org_id, year)
    classes = await pool.fetch(_CLASSES.format(where=f"({in_schools}) AND g.year = $2"),
                               org_id, year)
    groups = await pool.fetch(_GROUPS.format(where=owners), org_id)
    return Organisation(year, board, schools, _grades(grades), _classes(classes),
                        _groups(groups))


def _grades(rows: list[asyncpg.Record]) -> list[GradeUnit]:
    return [GradeUnit(r["id"], r["school_id"], r["grade"], r["year"]) for r in rows]


def _classes(rows: list[asyncpg.Record]) -> list[ClassUnit]:
    return [ClassUnit(r["id"], r["school_id"], r["grade_id"], r["grade"], r["name"])
            for r in rows]


def _groups(rows: list[asyncpg.Record]) -> list[GroupUnit]:
    return [GroupUnit(r["id"], r["owner_id"], r["name"], r["kind"]) for r in rows]
