"""What staff screens read of the two-way tables beyond the engine's own lists: reads paged
and filtered, survey responses paged, and the "new reports" badge with its seen mark.

The API (admin_api/staff/twoway_routes.py) checks rights first and then calls these; each
takes ids the caller may see. A teacher's badge counts their classes only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.people.store import ACCOUNT_NAME, People
from engine.platform.errors import InputError
from engine.twoway.reads import AccountRead
from engine.twoway.surveys import Response, response_count_and_page


@dataclass(frozen=True)
class ReadPage:
    total: int
    accounts: list[AccountRead]


def _check_paging(limit: int, offset: int) -> None:
    if not 1 <= limit <= 1000 or offset < 0:
        raise InputError("limit は 1〜1000、offset は 0 以上にしてください (bad paging)")


# One row per account of the broadcast with its earliest read among its deliveries; filters:
# $2 read (true) / unread (false) / all (null), $3 grade, $4 class.
_READS_WHERE = """
FROM (
    SELECT da.account_id, min(dr.read_at) AS read_at
    FROM delivery_accounts da
    LEFT JOIN delivery_reads dr ON dr.delivery_id = da.delivery_id
    WHERE da.broadcast_id = $1
    GROUP BY da.account_id
) r
JOIN accounts a ON a.id = r.account_id
LEFT JOIN grades g ON g.id = a.grade_id
LEFT JOIN classes cl ON cl.id = a.class_id
WHERE ($2::boolean IS NULL OR (r.read_at IS NOT NULL) = $2)
  AND ($3::bigint IS NULL OR a.grade_id = $3) AND ($4::bigint IS NULL OR a.class_id = $4)
"""


async def read_page(
    people: People,
    broadcast_id: int,
    read: bool | None = None,
    grade_id: int | None = None,
    class_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> ReadPage:
    """Accounts of the broadcast with their first read, filtered, in class order, one page."""
    _check_paging(limit, offset)
    args = (broadcast_id, read, grade_id, class_id)
    total: int = await people.pool.fetchval("SELECT count(*) " + _READS_WHERE, *args)
    rows = await people.pool.fetch(
        "SELECT a.id, a.class_id, g.grade, cl.name AS class_name, a.number, a.name_sealed, "
        "r.read_at " + _READS_WHERE + " ORDER BY g.grade NULLS LAST, cl.name NULLS LAST, "
        "a.number NULLS LAST, a.id LIMIT $5 OFFSET $6",
        *args, limit, offset,
    )
    open_ = people.sealer.open
    return ReadPage(total, [
        AccountRead(r["id"], r["class_id"], r["grade"], r["class_name"], r["number"],
                    open_(r["name_sealed"], ACCOUNT_NAME), r["read_at"])
        for r in rows
    ])


async def response_page(
    people: People, broadcast_id: int, limit: int = 100, offset: int = 0
) -> tuple[int, list[Response]]:
    """(total, one page of) the survey's responses in class order: one statement, the names
    of the page's children opened only (a survey has up to one response per account of its
    audience, tens of thousands)."""
    _check_paging(limit, offset)
    return await response_count_and_page(people, broadcast_id, limit, offset)


async def reports_seen_at(pool: asyncpg.Pool, staff_id: int) -> datetime | None:
    """When the staff member last marked the reports as seen (None: never)."""
    seen: datetime | None = await pool.fetchval(
        "SELECT seen_at FROM report_views WHERE staff_id = $1", staff_id
    )
    return seen


async def mark_reports_seen(pool: asyncpg.Pool, staff_id: int, now: datetime) -> None:
    await pool.execute(
        "INSERT INTO report_views (staff_id, seen_at) VALUES ($1, $2) "
        "ON CONFLICT (staff_id) DO UPDATE SET seen_at = greatest(report_views.seen_at, $2)",
        staff_id, now,
    )


async def unseen_report_count(
    pool: asyncpg.Pool,
    school_id: int,
    since: datetime | None,
    class_ids: Collection[int] | None = None,
) -> int:
    """Reports of the school (of these classes only, if given) made or changed after
    ``since`` (all when None), withdrawn ones included: a withdrawal is news too."""
    n: int = await pool.fetchval(
        "SELECT count(*) FROM attendance_reports r JOIN accounts a ON a.id = r.account_id "
        "WHERE r.school_id = $1 AND ($2::timestamptz IS NULL OR r.updated_at > $2) "
        "AND ($3::bigint[] IS NULL OR a.class_id = ANY($3))",
        school_id, since, None if class_ids is None else sorted(class_ids),
    )
    return n


async def unseen_reports_by_school(
    pool: asyncpg.Pool, school_ids: Collection[int], since: datetime | None
) -> dict[int, int]:
    """``unseen_report_count`` of many schools at once (a board's badge): school -> count,
    only schools with any."""
    rows = await pool.fetch(
        "SELECT school_id, count(*) AS n FROM attendance_reports "
        "WHERE school_id = ANY($1::bigint[]) AND ($2::timestamptz IS NULL OR updated_at > $2) "
        "GROUP BY school_id",
        sorted(school_ids), since,
    )
    return {r["school_id"]: r["n"] for r in rows}


@dataclass(frozen=True)
class Waiting:
    """A broadcast's delivered mails still waiting for 「確認しました」 (``unread``) or for
    the answers to its questions (``unanswered``); None: the broadcast does not ask. The
    numbers are the broadcast page's ``unread`` / ``unanswered`` filters' totals."""

    unread: int | None
    unanswered: int | None


# Per broadcast: whether it asks, and its delivered mails already read / answered. Counted from
# the reads and the responses by their per-broadcast indexes (the cost grows with the answers,
# not with the recipients); "answered" is the filters' rule: every account of the delivery has
# a response or, for a delivery of no account, its contact has.
_DONE_SQL = """
WITH asks AS (
    SELECT b.id,
           EXISTS (SELECT 1 FROM read_requests q WHERE q.broadcast_id = b.id) AS reads,
           EXISTS (SELECT 1 FROM surveys s WHERE s.broadcast_id = b.id) AS survey
    FROM unnest($1::bigint[]) AS b(id)
), read AS (
    SELECT r.broadcast_id AS id, count(*) AS n FROM delivery_reads r
    JOIN deliveries d ON d.id = r.delivery_id AND d.state = 'delivered'
    WHERE r.broadcast_id = ANY($1::bigint[]) GROUP BY r.broadcast_id
), answered AS (
    SELECT da.broadcast_id, da.delivery_id FROM survey_responses s
    JOIN delivery_accounts da ON da.broadcast_id = s.broadcast_id AND da.account_id = s.account_id
    WHERE s.broadcast_id = ANY($1::bigint[]) AND s.account_id IS NOT NULL
    GROUP BY da.broadcast_id, da.delivery_id
    HAVING count(*) = (SELECT count(*) FROM delivery_accounts x
                       WHERE x.delivery_id = da.delivery_id)
    UNION
    SELECT dc.broadcast_id, dc.delivery_id FROM survey_responses s
    JOIN delivery_contacts dc ON dc.broadcast_id = s.broadcast_id AND dc.contact_id = s.contact_id
    WHERE s.broadcast_id = ANY($1::bigint[]) AND s.account_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM delivery_accounts x WHERE x.delivery_id = dc.delivery_id)
), answered_delivered AS (
    SELECT a.broadcast_id AS id, count(*) AS n FROM answered a
    JOIN deliveries d ON d.id = a.delivery_id AND d.state = 'delivered' GROUP BY a.broadcast_id
)
SELECT asks.id, asks.reads, asks.survey, coalesce(read.n, 0) AS read,
       coalesce(answered_delivered.n, 0) AS answered
FROM asks LEFT JOIN read USING (id) LEFT JOIN answered_delivered USING (id)
"""


async def waiting(pool: asyncpg.Pool, delivered: dict[int, int]) -> dict[int, Waiting]:
    """For each broadcast id of ``delivered`` (its delivered mails, as its progress counts
    them), what still waits; only broadcasts that ask anything are in the answer."""
    if not delivered:
        return {}
    rows = await pool.fetch(_DONE_SQL, list(delivered))
    return {
        r["id"]: Waiting(
            delivered[r["id"]] - r["read"] if r["reads"] else None,
            delivered[r["id"]] - r["answered"] if r["survey"] else None,
        )
        for r in rows if r["reads"] or r["survey"]
    }
