"""What an actor may send to, by name, and how many an audience reaches before it is sent.

The staff screens build their audience picker from ``choices`` and their confirmation step
from ``count`` ("the wrong school" guard: the schools, the recipient count and the reasons some
are skipped, shown before anything is stored). Both follow ``engine.staff.rights``: the
choices are exactly what ``check_audience`` accepts for the actor, and ``count`` refuses what
``create`` would refuse, with the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from engine.people import Audience, Category, People
from engine.people.audience import resolve
from engine.people.directory import current_year
from engine.people.models import SKIP_LABELS_JA
from engine.queue import Priority
from engine.staff.models import Principal, Role
from engine.staff.rights import check_audience, tenant


@dataclass(frozen=True)
class Choice:
    """One thing the actor may send to: ``kind`` is board, school, grade, class or group."""

    kind: str
    id: int
    label: str


@dataclass(frozen=True)
class Choices:
    board: list[Choice] = field(default_factory=list)
    schools: list[Choice] = field(default_factory=list)
    grades: list[Choice] = field(default_factory=list)
    classes: list[Choice] = field(default_factory=list)
    groups: list[Choice] = field(default_factory=list)

    def all(self) -> list[Choice]:
        return [*self.board, *self.schools, *self.grades, *self.classes, *self.groups]


_CLASSES_SQL = """
SELECT c.id, o.name AS school, g.grade, c.name
FROM classes c JOIN grades g ON g.id = c.grade_id JOIN organisations o ON o.id = g.school_id
WHERE ({where}) ORDER BY o.code, g.grade, c.name
"""
_GROUPS_SQL = """
SELECT g.id, o.name AS owner, g.name FROM groups g JOIN organisations o ON o.id = g.owner_id
WHERE ({where}) ORDER BY o.kind <> 'board', o.code, g.name
"""


async def choices(pool: asyncpg.Pool, actor: Principal, now: datetime) -> Choices:
    """The board, schools, grades and classes (of the current school year) and groups the
    actor may name in an audience; a teacher's own classes and groups only."""
    if actor.role is Role.TEACHER:
        classes = await pool.fetch(
            _CLASSES_SQL.format(where="c.id = ANY($1::bigint[])"), sorted(actor.class_ids)
        )
        groups = await pool.fetch(
            _GROUPS_SQL.format(where="g.id = ANY($1::bigint[])"), sorted(actor.group_ids)
        )
        return Choices(classes=_class_choices(classes), groups=_group_choices(groups))
    board = tenant(actor)
    if actor.role is Role.BOARD:
        if board is None:  # no board registered: nothing to choose from
            return Choices()
        org_id, orgs = board, "o.parent_id = $1"
    elif actor.organisation_id is None:
        return Choices()
    else:
        org_id, orgs = actor.organisation_id, "o.id = $1"
    year = await current_year(pool, now, create=False)
    schools = await pool.fetch(
        f"SELECT o.id, o.name FROM organisations o WHERE {orgs} AND o.kind <> 'board' "
        "ORDER BY o.code",
        org_id,
    )
    grades = await pool.fetch(
        "SELECT g.id, o.name AS school, g.grade FROM grades g "
        f"JOIN organisations o ON o.id = g.school_id WHERE {orgs} AND g.year = $2 "
        "ORDER BY o.code, g.grade",
        org_id, year,
    )
    classes = await pool.fetch(
        _CLASSES_SQL.format(where=f"{orgs} AND g.year = $2"), org_id, year
    )
    owners = "o.id = $1 OR o.parent_id = $1" if actor.role is Role.BOARD else "o.id = $1"
    groups = await pool.fetch(_GROUPS_SQL.format(where=owners), org_id)
    out = Choices(
        schools=[Choice("school", r["id"], r["name"]) for r in schools],
        grades=[Choice("grade", r["id"], f"{r['school']} {r['grade']}年") for r in grades],
        classes=_class_choices(classes),
        groups=_group_choices(groups),
    )
    if actor.role is Role.BOARD:
        out.board.append(Choice("board", org_id, "教育委員会の全体 (全校)"))
    return out


def _class_choices(rows: list[asyncpg.Record]) -> list[Choice]:
    return [Choice("class", r["id"], f"{r['school']} {r['grade']}年{r['name']}組") for r in rows]


def _group_choices(rows: list[asyncpg.Record]) -> list[Choice]:
    return [Choice("group", r["id"], f"{r['owner']} {r['name']}") for r in rows]


@dataclass(frozen=True)
class Count:
    """What an audience reaches now: ``recipients`` addresses (each once; suppressed ones
    among them get a failed delivery), the skipped ones by Japanese reason, and the names of
    the schools (or the board) the audience belongs to."""

    recipients: int
    skipped: dict[str, int]
    schools: list[str]


_OWNERS_SQL = """
SELECT DISTINCT o.name, o.kind = 'board' AS is_board, o.code FROM organisations o WHERE o.id IN (
    SELECT unnest($1::bigint[])
    UNION SELECT unnest($2::bigint[])
    UNION SELECT school_id FROM grades WHERE id = ANY($3::bigint[])
    UNION SELECT g.school_id FROM classes c JOIN grades g ON g.id = c.grade_id
          WHERE c.id = ANY($4::bigint[])
    UNION SELECT owner_id FROM groups WHERE id = ANY($5::bigint[])
    UNION SELECT school_id FROM accounts WHERE id = ANY($6::bigint[]))
ORDER BY is_board DESC, o.code
"""


async def count(
    pool: asyncpg.Pool, people: People, actor: Principal, audience: Audience,
    category: Category, priority: Priority, now: datetime,
) -> Count:
    """Check the audience against the actor's rights (the errors ``sending.create`` gives),
    then resolve it as sending would now, storing nothing."""
    await check_audience(pool, actor, audience)
    resolved = await resolve(pool, people, audience, category, priority, now)
    owners = await pool.fetch(
        _OWNERS_SQL, list(audience.boards), list(audience.schools), list(audience.grades),
        list(audience.classes), list(audience.groups), list(audience.accounts),
    )
    return Count(
        len(resolved.recipients),
        {SKIP_LABELS_JA[reason]: n for reason, n in sorted(resolved.skipped.items())},
        [r["name"] for r in owners],
    )
