"""The new school year: every child one grade up in the same class name, graduates closed.

``rollover`` moves from the current school year to the next in one transaction: grades and
classes of the new year are created from the old ones (grade + 1, class names kept), active
children move to them, children in their school's final grade are closed as graduated, and the
new year becomes current. Children listed in a class-change file (``engine.people.class_moves``)
go to the class it names instead; every row of it must name an active, non-graduating child, or
nothing changes. Staff accounts, contacts and groups are not touched; a graduate's
contacts stay (they may have other children or groups) but no longer receive for that child.
Given a ``Farewell`` message, the graduates' contacts are told in the same transaction.

A dry run is the real run rolled back: the same statements and checks (a new number that
collides in its new class is refused by both), then the transaction is undone, so what the
dry run approves the real run does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from engine.people.class_moves import ClassMove
from engine.people.directory import current_year, ensure_classes
from engine.people.store import ADDRESS, People
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue

COUNTS_SQL = """
SELECT o.code, o.name,
       count(a.id) FILTER (WHERE g.grade < o.final_grade) AS advancing,
       count(a.id) FILTER (WHERE g.grade >= o.final_grade) AS graduating
FROM accounts a
JOIN grades g ON g.id = a.grade_id
JOIN organisations o ON o.id = a.school_id
WHERE a.state = 'active' AND g.year = $1
GROUP BY o.code, o.name ORDER BY o.code
"""

NEW_GRADES_SQL = """
INSERT INTO grades (school_id, year, grade)
SELECT g.school_id, $2, g.grade + 1
FROM grades g JOIN organisations o ON o.id = g.school_id
WHERE g.year = $1 AND g.grade < o.final_grade
ON CONFLICT DO NOTHING
"""

NEW_CLASSES_SQL = """
INSERT INTO classes (grade_id, name)
SELECT ng.id, c.name
FROM classes c
JOIN grades g ON g.id = c.grade_id
JOIN grades ng ON ng.school_id = g.school_id AND ng.year = $2 AND ng.grade = g.grade + 1
WHERE g.year = $1
ON CONFLICT DO NOTHING
"""

ADVANCE_SQL = """
UPDATE accounts a
SET grade_id = ng.id,
    class_id = (SELECT nc.id FROM classes oc JOIN classes nc ON nc.grade_id = ng.id
                AND nc.name = oc.name WHERE oc.id = a.class_id)
FROM grades g
JOIN organisations o ON o.id = g.school_id
JOIN grades ng ON ng.school_id = g.school_id AND ng.year = $2 AND ng.grade = g.grade + 1
WHERE a.grade_id = g.id AND g.year = $1 AND a.state = 'active' AND g.grade < o.final_grade
"""

GRADUATES_SQL = """
SELECT a.id FROM accounts a
JOIN grades g ON g.id = a.grade_id JOIN organisations o ON o.id = g.school_id
WHERE g.year = $1 AND a.state = 'active' AND g.grade >= o.final_grade
"""

# Graduates' contacts that receive mail (confirmed, not left), each address once.
GRADUATE_CONTACTS_SQL = """
SELECT DISTINCT c.id, c.address_sealed FROM contact_accounts ca
JOIN contacts c ON c.id = ca.contact_id
WHERE ca.account_id = ANY($1::bigint[]) AND c.state = 'active' AND c.confirmed_at IS NOT NULL
"""


# The children a class-change file names, found where they are now.
MOVES_SQL = """
SELECT m.line, a.id, o.id AS school_id, g.grade, o.final_grade
FROM unnest($1::int[], $2::text[], $3::smallint[], $4::text[], $5::int[])
     AS m(line, school, grade, class_name, number)
JOIN organisations o ON o.code = m.school OR o.name = m.school
JOIN grades g ON g.school_id = o.id AND g.year = $6 AND g.grade = m.grade
JOIN classes c ON c.grade_id = g.id AND c.name = m.class_name
JOIN accounts a ON a.class_id = c.id AND a.number = m.number AND a.state = 'active'
"""


@dataclass(frozen=True)
class SchoolRollover:
    code: str
    name: str
    advancing: int
    graduating: int


@dataclass(frozen=True)
class RolloverResult:
    from_year: int
    to_year: int
    schools: list[SchoolRollover]
    applied: bool
    # Children put in another class than their old class's name (from the class-change file).
    moved: int = 0
    # Graduates' addresses told (or, in a dry run, to be told), and the broadcast that tells them.
    told: int = 0
    farewell_id: int | None = None

    @property
    def advancing(self) -> int:
        return sum(s.advancing for s in self.schools)

    @property
    def graduating(self) -> int:
        return sum(s.graduating for s in self.schools)


@dataclass(frozen=True)
class Farewell:
    """The mail that tells graduates' contacts their child's account is closed."""

    message: NewBroadcast
    queue: Queue
    max_age: float


async def rollover(
    people: People,
    to_year: int,
    dry_run: bool = False,
    moves: Sequence[ClassMove] = (),
    farewell: Farewell | None = None,
) -> RolloverResult:
    """Move to ``to_year``; with ``farewell``, tell the graduates' contacts in the same commit.
    With ``dry_run`` everything is done and then rolled back."""
    try:
        return await _rollover(people, to_year, dry_run, moves, farewell)
    except _RolledBack as done:
        return done.result


class _RolledBack(Exception):
    """Raised at the end of a dry run so that its transaction is undone."""

    def __init__(self, result: RolloverResult) -> None:
        super().__init__("dry run")
        self.result = result


async def _rollover(
    people: People,
    to_year: int,
    dry_run: bool,
    moves: Sequence[ClassMove],
    farewell: Farewell | None,
) -> RolloverResult:
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        # One rollover at a time: a second one waits and then finds the year already moved.
        await conn.execute("LOCK TABLE school_years IN EXCLUSIVE MODE")
        year = await current_year(conn, now)
        if to_year != year + 1:
            raise InputError(
                f"今の年度は {year} 年度です: 切り替えられるのは {year + 1} 年度だけです "
                f"(the current school year is {year}; --to-year must be {year + 1})"
            )
        schools = [
            SchoolRollover(r["code"], r["name"], r["advancing"], r["graduating"])
            for r in await conn.fetch(COUNTS_SQL, year)
        ]
        found = await _find_moves(conn, moves, year)
        graduates = [r["id"] for r in await conn.fetch(GRADUATES_SQL, year)]
        told = await conn.fetch(GRADUATE_CONTACTS_SQL, graduates) if farewell else []
        await conn.execute(
            "INSERT INTO school_years (year, is_current, created_at) VALUES ($1, false, $2) "
            "ON CONFLICT DO NOTHING",
            to_year, now,
        )
        await conn.execute(NEW_GRADES_SQL, year, to_year)
        await conn.execute(NEW_CLASSES_SQL, year, to_year)
        await conn.execute(ADVANCE_SQL, year, to_year)
        await conn.execute(
            "UPDATE accounts SET state = 'closed', closed_reason = 'graduated', closed_at = $2 "
            "WHERE id = ANY($1::bigint[])",
            graduates, now,
        )
        await _apply_moves(conn, to_year, found)
        farewell_id = None
        if farewell and told and not dry_run:
            addresses = [people.sealer.open(r["address_sealed"], ADDRESS) for r in told]
            farewell_id = await farewell.queue.enqueue(
                replace(farewell.message, recipients=addresses), now, farewell.max_age,
                conn=conn,
            )
            await conn.execute(
                "UPDATE broadcasts SET audience = $2::jsonb WHERE id = $1",
                farewell_id, json.dumps({"graduates": len(graduates)}),
            )
        await conn.execute("UPDATE school_years SET is_current = false WHERE is_current")
        await conn.execute("UPDATE school_years SET is_current = true WHERE year = $1", to_year)
        if dry_run:
            raise _RolledBack(RolloverResult(year, to_year, schools, False, len(found), len(told)))
    return RolloverResult(
        year, to_year, schools, True, len(found), len(told), farewell_id
    )


@dataclass(frozen=True)
class _Found:
    move: ClassMove
    account_id: int
    school_id: int
    new_grade: int


async def _find_moves(
    conn: asyncpg.Connection, moves: Sequence[ClassMove], year: int
) -> list[_Found]:
    """Each row's child, or InputError listing every row that names none (or a graduate)."""
    if not moves:
        return []
    rows = {
        r["line"]: r
        for r in await conn.fetch(
            MOVES_SQL, [m.line for m in moves], [m.school for m in moves],
            [m.grade for m in moves], [m.class_name for m in moves], [m.number for m in moves],
            year,
        )
    }
    errors: list[str] = []
    found: list[_Found] = []
    seen: dict[int, int] = {}
    targets: set[tuple[int, int, str, int]] = set()
    for m in moves:
        r = rows.get(m.line)
        where = f"{m.line} 行目 ({m.school} {m.grade}年{m.class_name}組 {m.number}番)"
        if r is None:
            errors.append(f"{where}: {year} 年度にその児童生徒はいません (no such child)")
        elif r["grade"] >= r["final_grade"]:
            errors.append(f"{where}: 卒業する学年です (graduating)")
        elif r["id"] in seen:
            errors.append(f"{where}: {seen[r['id']]} 行目と同じ児童生徒です (listed twice)")
        elif m.new_number is not None and (
            key := (r["school_id"], r["grade"] + 1, m.new_class, m.new_number)
        ) in targets:
            errors.append(f"{where}: 新しい組で番号 {m.new_number} が重なります (number twice)")
        else:
            seen[r["id"]] = m.line
            if m.new_number is not None:
                targets.add(key)
            found.append(_Found(m, r["id"], r["school_id"], r["grade"] + 1))
    if errors:
        raise InputError(
            f"組替えファイルの {len(errors)} 行が使えません。何も変更していません: "
            + "; ".join(errors)
        )
    return found


async def _apply_moves(conn: asyncpg.Connection, to_year: int, found: list[_Found]) -> None:
    if not found:
        return
    places = await ensure_classes(
        conn, to_year, ((f.school_id, f.new_grade, f.move.new_class) for f in found)
    )
    ids = [f.account_id for f in found]
    # Numbers first cleared, then set: children may swap numbers within one class.
    await conn.execute(
        "UPDATE accounts a SET class_id = u.class_id, number = NULL "
        "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, class_id) WHERE a.id = u.id",
        ids, [places[(f.school_id, f.new_grade, f.move.new_class)][1] for f in found],
    )
    numbered = [f for f in found if f.move.new_number is not None]
    try:
        await conn.execute(
            "UPDATE accounts a SET number = u.number "
            "FROM unnest($1::bigint[], $2::int[]) AS u(id, number) WHERE a.id = u.id",
            [f.account_id for f in numbered], [f.move.new_number for f in numbered],
        )
    except asyncpg.UniqueViolationError:
        raise InputError(
            "組替えファイルの新しい番号が、組替えしない児童生徒の番号と重なります。"
            "何も変更していません (a new number is taken in its new class)"
        ) from None
