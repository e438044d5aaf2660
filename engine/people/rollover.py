"""The new school year: every child one grade up in the same class name, graduates closed.

``rollover`` moves from the current school year to the next in one transaction: grades and
classes of the new year are created from the old ones (grade + 1, class names kept), active
children move to them, children in their school's final grade are closed as graduated, and the
new year becomes current. Staff accounts, contacts and groups are not touched; a graduate's
contacts stay (they may have other children or groups) but no longer receive for that child.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError
from engine.people.directory import current_year
from engine.people.store import People

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

GRADUATE_SQL = """
UPDATE accounts a
SET state = 'closed', closed_reason = 'graduated', closed_at = $2
FROM grades g JOIN organisations o ON o.id = g.school_id
WHERE a.grade_id = g.id AND g.year = $1 AND a.state = 'active' AND g.grade >= o.final_grade
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

    @property
    def advancing(self) -> int:
        return sum(s.advancing for s in self.schools)

    @property
    def graduating(self) -> int:
        return sum(s.graduating for s in self.schools)


async def rollover(people: People, to_year: int, dry_run: bool = False) -> RolloverResult:
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
        if dry_run:
            return RolloverResult(year, to_year, schools, applied=False)
        await conn.execute(
            "INSERT INTO school_years (year, is_current, created_at) VALUES ($1, false, $2) "
            "ON CONFLICT DO NOTHING",
            to_year, now,
        )
        await conn.execute(NEW_GRADES_SQL, year, to_year)
        await conn.execute(NEW_CLASSES_SQL, year, to_year)
        await conn.execute(ADVANCE_SQL, year, to_year)
        await conn.execute(GRADUATE_SQL, year, now)
        await conn.execute("UPDATE school_years SET is_current = false WHERE is_current")
        await conn.execute("UPDATE school_years SET is_current = true WHERE year = $1", to_year)
    return RolloverResult(year, to_year, schools, applied=True)
