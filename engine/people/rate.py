"""Registration rate (登録率) per school, grade and class, counted by SQL aggregates.

For the children's accounts (kind 'child', active) of each school, each grade of it and each
class of that: how many accounts, how many of them have at least one confirmed contact that
still receives (``registered``), how many contacts they have and how many of those are
confirmed and receiving (``confirmed``). Two rates follow:

    account_rate   registered / accounts: the share of children some guardian receives for
    contact_rate   confirmed contacts / accounts: confirmed addresses per child (may pass 1)

A contact of two siblings counts for each of them. One statement with GROUPING SETS, never a
loop over the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

# Per account (its contacts, by account id alone), then per class (1,200 rows for 40,000
# accounts), and only then the names and the GROUPING SETS: grouping 40,000 rows by id and
# school/grade/class ids, not by grade numbers and class names, costs about half as much.
RATE_SQL = """
WITH per_account AS (
    SELECT a.id, a.school_id, a.grade_id, a.class_id,
           count(ca.contact_id) AS contacts,
           count(ca.contact_id) FILTER (
               WHERE k.confirmed_at IS NOT NULL AND k.state = 'active') AS confirmed
    FROM accounts a
    LEFT JOIN contact_accounts ca ON ca.account_id = a.id
    LEFT JOIN contacts k ON k.id = ca.contact_id
    WHERE a.state = 'active' AND a.kind = 'child'
      AND ($1::bigint[] IS NULL OR a.school_id = ANY($1::bigint[]))
      AND ($2::bigint[] IS NULL OR a.class_id = ANY($2::bigint[]))
    GROUP BY a.id
), per_class AS (
    SELECT school_id, grade_id, class_id, count(*) AS accounts,
           count(*) FILTER (WHERE confirmed > 0) AS registered,
           sum(contacts) AS contacts, sum(confirmed) AS confirmed
    FROM per_account GROUP BY school_id, grade_id, class_id
)
SELECT o.code, o.name, g.grade, c.name AS class_name,
       GROUPING(g.grade) = 1 AS school_total, GROUPING(c.name) = 1 AS grade_total,
       sum(p.accounts)::bigint AS accounts, sum(p.registered)::bigint AS registered,
       sum(p.contacts)::bigint AS contacts, sum(p.confirmed)::bigint AS confirmed
FROM per_class p JOIN organisations o ON o.id = p.school_id
LEFT JOIN grades g ON g.id = p.grade_id
LEFT JOIN classes c ON c.id = p.class_id
GROUP BY GROUPING SETS ((o.code, o.name), (o.code, o.name, g.grade),
                        (o.code, o.name, g.grade, c.name))
ORDER BY o.code, g.grade NULLS FIRST, c.name NULLS FIRST
"""


@dataclass(frozen=True)
class RateRow:
    school: str
    school_name: str
    # None: the school's total (grade) or the grade's total (class_name).
    grade: int | None
    class_name: str | None
    accounts: int
    registered: int
    contacts: int
    confirmed: int

    @property
    def account_rate(self) -> float:
        """Accounts with at least one confirmed contact / accounts."""
        return self.registered / self.accounts if self.accounts else 0.0

    @property
    def contact_rate(self) -> float:
        """Confirmed contacts / accounts."""
        return self.confirmed / self.accounts if self.accounts else 0.0


async def registration_rate(
    db: asyncpg.Pool | asyncpg.Connection,
    school_ids: Sequence[int] | None = None,
    class_ids: Sequence[int] | None = None,
) -> list[RateRow]:
    """Rows for each school, then each grade and each class of it (totals first); limited to
    ``school_ids`` and ``class_ids`` when given (None: no limit)."""
    rows = await db.fetch(
        RATE_SQL,
        list(school_ids) if school_ids is not None else None,
        list(class_ids) if class_ids is not None else None,
    )
    return [
        RateRow(
            r["code"], r["name"], None if r["school_total"] else r["grade"],
            None if r["grade_total"] else r["class_name"], r["accounts"], r["registered"],
            r["contacts"], r["confirmed"],
        )
        for r in rows
        # A grade's only "class" of accounts without a class repeats the grade's total.
        if r["school_total"] or r["grade_total"] or r["class_name"] is not None
    ]
