"""The monthly operation report (月次運用レポート): what the service did in one month.

Every figure is one SQL aggregate over the month (Japan time: the 1st 00:00 to the next 1st):

- broadcasts sent in the month (by send time), by school and category, and for each its first
  and last delivery and the 50/95/100 percentiles of the time from its send time to each
  delivery (delivered ones only; a scheduled broadcast counts from its send time);
- the failures of those broadcasts' deliveries, by operator category;
- per school: contacts confirmed in the month (registrations), children's accounts closed in the
  month (leavers) and the registration rate at the month's end (children's accounts open then
  with at least one confirmed contact that has not left, over those open then: the
  ``account_rate`` of engine/people/rate.py, as of the month's end);
- blocks and suspensions by receiving site (carrier), from ``shaping_events`` (migration 033);
- availability: the share of the month in which at least one runner was heartbeating
  (``runner_uptime``, engine/queue/uptime.py), counted from the first heartbeat on record when
  the service started during the month and up to now for the current month;
- the audit chain's state (verified now) and the entries written in the month;
- backups taken in the month (the audit log's ``backup.create`` entries, ok or failed).

With a board, broadcasts and schools are that board's (command-line broadcasts, which belong to
no school, count while there is one board); sites, runners, the audit chain and backups are the
installation's and shown whole.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from engine.bounce.classify.categories import CATEGORIES, OTHER
from engine.people.directory import find_organisation
from engine.people.models import CATEGORY_LABELS_JA, Category, OrgKind
from engine.platform.clock import JST
from engine.platform.errors import InputError
from engine.queue.uptime import Interval, first_beat, up_intervals
from engine.staff import audit
from engine.staff.backup import BACKUP_ACTION
from engine.staff.rights import SINGLE_BOARD

# A gap shorter than this between runs is a restart, not an outage worth listing.
OUTAGE_LISTED = timedelta(minutes=1)
CLI_OWNER = "教育委員会 (コマンドライン)"

# The month's broadcasts in scope: $1 start, $2 end, $3 board id or NULL.
_SCOPE = f"""
WITH b AS (
    SELECT b.id, b.send_at, b.category, b.subject, b.recipient_count, b.cancelled_at,
           o.code AS org_code, o.name AS org_name
    FROM broadcasts b
    LEFT JOIN broadcast_owners bo ON bo.broadcast_id = b.id
    LEFT JOIN organisations o ON o.id = bo.organisation_id
    WHERE b.send_at >= $1 AND b.send_at < $2
      AND ($3::bigint IS NULL
           OR bo.organisation_id IN (SELECT id FROM organisations WHERE id = $3 OR parent_id = $3)
           OR (bo.organisation_id IS NULL AND {SINGLE_BOARD}))
)
"""

BROADCASTS_SQL = _SCOPE + """
SELECT b.id, b.send_at, b.category, b.subject, b.recipient_count, b.cancelled_at,
       b.org_code, b.org_name,
       count(d.id) FILTER (WHERE d.state = 'delivered') AS delivered,
       count(d.id) FILTER (WHERE d.state = 'failed') AS failed,
       count(d.id) FILTER (WHERE d.state NOT IN ('delivered', 'failed')) AS pending,
       min(d.finished_at) FILTER (WHERE d.state = 'delivered') AS first_at,
       max(d.finished_at) FILTER (WHERE d.state = 'delivered') AS last_at,
       percentile_disc(ARRAY[0.5, 0.95, 1.0]) WITHIN GROUP (
           ORDER BY greatest(d.finished_at - b.send_at, interval '0')
       ) FILTER (WHERE d.state = 'delivered') AS percentiles
FROM b LEFT JOIN deliveries d ON d.broadcast_id = b.id
GROUP BY b.id, b.send_at, b.category, b.subject, b.recipient_count, b.cancelled_at,
         b.org_code, b.org_name
ORDER BY b.send_at, b.id
"""

FAILURES_SQL = _SCOPE + """
SELECT coalesce(d.category, '') AS category, count(*) AS n
FROM b JOIN deliveries d ON d.broadcast_id = b.id
WHERE d.state = 'failed'
GROUP BY 1
"""

# Per school of the board (or every school): registrations, leavers, the rate at month end.
# Children's accounts only, like the registration rate of engine/people/rate.py (account_rate).
PEOPLE_SQL = """
SELECT o.code, o.name,
    (SELECT count(DISTINCT c.id) FROM contacts c
       JOIN contact_accounts ca ON ca.contact_id = c.id
       JOIN accounts a ON a.id = ca.account_id
     WHERE a.school_id = o.id AND c.confirmed_at >= $1 AND c.confirmed_at < $2) AS registered,
    (SELECT count(*) FROM accounts a
     WHERE a.school_id = o.id AND a.kind = 'child'
       AND a.closed_at >= $1 AND a.closed_at < $2) AS leavers,
    (SELECT count(*) FROM accounts a
     WHERE a.school_id = o.id AND a.kind = 'child' AND a.created_at < $2
       AND (a.closed_at IS NULL OR a.closed_at >= $2)) AS accounts,
    (SELECT count(*) FROM accounts a
     WHERE a.school_id = o.id AND a.kind = 'child' AND a.created_at < $2
       AND (a.closed_at IS NULL OR a.closed_at >= $2)
       AND EXISTS (SELECT 1 FROM contact_accounts ca JOIN contacts c ON c.id = ca.contact_id
                   WHERE ca.account_id = a.id AND c.state = 'active'
                     AND c.confirmed_at < $2)) AS reachable
FROM organisations o
WHERE o.kind <> 'board' AND ($3::bigint IS NULL OR o.parent_id = $3)
ORDER BY o.code
"""

CARRIERS_SQL = """
SELECT site, sum(blocks) AS blocks, sum(suspensions) AS suspensions, max(at) AS last_at,
       (array_agg(reason ORDER BY at DESC) FILTER (WHERE blocks > 0))[1] AS reason
FROM shaping_events WHERE at >= $1 AND at < $2
GROUP BY site ORDER BY site
"""

BACKUPS_SQL = """
SELECT at, result, object, detail FROM audit_log
WHERE action = $3 AND at >= $1 AND at < $2 ORDER BY seq
"""


@dataclass(frozen=True)
class BroadcastLine:
    id: int
    send_at: datetime
    owner: str
    category: str
    subject: str
    recipients: int
    delivered: int
    failed: int
    pending: int
    cancelled: bool
    first_at: datetime | None
    last_at: datetime | None
    # Time from the send time to delivery: 50th, 95th and 100th percentile (None: none yet).
    p50: timedelta | None
    p95: timedelta | None
    p100: timedelta | None


@dataclass(frozen=True)
class SchoolCategory:
    owner: str
    category: str
    broadcasts: int


@dataclass(frozen=True)
class FailureLine:
    key: str
    label: str
    hard: bool
    count: int


@dataclass(frozen=True)
class SchoolPeople:
    code: str
    name: str
    registered: int
    leavers: int
    accounts: int
    reachable: int

    @property
    def rate(self) -> float | None:
        return self.reachable / self.accounts if self.accounts else None


@dataclass(frozen=True)
class CarrierLine:
    site: str
    blocks: int
    suspensions: int
    last_at: datetime
    reason: str


@dataclass(frozen=True)
class Availability:
    """Runner uptime in [start, end); ``start`` is None when no heartbeat is on record."""

    start: datetime | None
    end: datetime
    up_seconds: float
    outages: tuple[Interval, ...] = ()

    @property
    def period_seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.start else 0.0

    @property
    def ratio(self) -> float | None:
        return self.up_seconds / self.period_seconds if self.period_seconds > 0 else None


@dataclass(frozen=True)
class BackupLine:
    at: datetime
    ok: bool
    name: str
    detail: str


@dataclass
class MonthlyReport:
    month: str
    start: datetime
    end: datetime
    board: str | None
    generated_at: datetime
    broadcasts: list[BroadcastLine] = field(default_factory=list)
    by_school: list[SchoolCategory] = field(default_factory=list)
    failures: list[FailureLine] = field(default_factory=list)
    people: list[SchoolPeople] = field(default_factory=list)
    carriers: list[CarrierLine] = field(default_factory=list)
    availability: Availability | None = None
    audit: audit.Verification | None = None
    audit_entries: int = 0
    backups: list[BackupLine] = field(default_factory=list)

    @property
    def scope_ja(self) -> str:
        return f"{self.board}" if self.board else "全体"


_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def month_bounds(text: str) -> tuple[datetime, datetime]:
    """The month "2026-11" as [start, end) in Japan time; InputError when it is not one."""
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InputError(
            f"--month {text!r} は年月ではありません。2026-11 の形で指定してください "
            "(give the month as YYYY-MM)"
        )
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=JST)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=JST)
    return start, end


def _category_label(key: str) -> str:
    try:
        return CATEGORY_LABELS_JA[Category(key)]
    except ValueError:
        return key


async def monthly_report(
    pool: asyncpg.Pool, audit_key: bytes, month: str, now: datetime, board: str | None = None
) -> MonthlyReport:
    """The figures of ``month`` ("2026-11"), of one board (code or name) or of everything."""
    start, end = month_bounds(month)
    if start > now:
        raise InputError(f"{month} はまだ始まっていません (the month has not begun)")
    board_id: int | None = None
    board_name: str | None = None
    if board is not None:
        org = await find_organisation(pool, board)
        if org.kind is not OrgKind.BOARD:
            raise InputError(
                f"「{board}」は教育委員会ではありません (--board takes a board, not a school)"
            )
        board_id, board_name = org.id, org.name
    report = MonthlyReport(month=f"{start:%Y-%m}", start=start, end=end, board=board_name,
                           generated_at=now)
    report.broadcasts = [
        _broadcast(r) for r in await pool.fetch(BROADCASTS_SQL, start, end, board_id)
    ]
    counted = Counter((b.owner, b.category) for b in report.broadcasts)
    report.by_school = [SchoolCategory(o, c, n) for (o, c), n in sorted(counted.items())]
    report.failures = _failures(await pool.fetch(FAILURES_SQL, start, end, board_id))
    report.people = [
        SchoolPeople(r["code"], r["name"], r["registered"], r["leavers"], r["accounts"],
                     r["reachable"])
        for r in await pool.fetch(PEOPLE_SQL, start, end, board_id)
    ]
    report.carriers = [
        CarrierLine(r["site"], r["blocks"], r["suspensions"], r["last_at"], r["reason"] or "")
        for r in await pool.fetch(CARRIERS_SQL, start, end)
    ]
    report.availability = await availability(pool, start, min(end, now))
    report.audit = await audit.verify(pool, audit_key, board_id)
    report.audit_entries = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE at >= $1 AND at < $2", start, end
    )
    report.backups = [
        BackupLine(r["at"], r["result"] == audit.Result.OK, r["object"], r["detail"])
        for r in await pool.fetch(BACKUPS_SQL, start, end, BACKUP_ACTION)
    ]
    return report


def _broadcast(r: asyncpg.Record) -> BroadcastLine:
    p = r["percentiles"] or [None, None, None]
    return BroadcastLine(
        r["id"], r["send_at"], r["org_name"] or CLI_OWNER, _category_label(r["category"]),
        r["subject"], r["recipient_count"], r["delivered"], r["failed"], r["pending"],
        r["cancelled_at"] is not None, r["first_at"], r["last_at"], p[0], p[1], p[2],
    )


def _failures(rows: list[asyncpg.Record]) -> list[FailureLine]:
    counts: Counter[str] = Counter()
    for r in rows:
        counts[r["category"] if r["category"] in CATEGORIES else OTHER] += r["n"]
    order = list(CATEGORIES)
    return [
        FailureLine(key, CATEGORIES[key].label_ja, CATEGORIES[key].hard, n)
        for key, n in sorted(counts.items(), key=lambda kv: order.index(kv[0]))
    ]


async def availability(pool: asyncpg.Pool, start: datetime, end: datetime) -> Availability:
    """Uptime in [start, end), from the first heartbeat on record when that is later."""
    first = await first_beat(pool)
    if first is None or first >= end:
        return Availability(None, end, 0.0)
    begin = max(start, first)
    up = await up_intervals(pool, begin, end)
    outages: list[Interval] = []
    at = begin
    for run in [*up, Interval(end, end)]:
        if run.start - at >= OUTAGE_LISTED:
            outages.append(Interval(at, run.start))
        at = max(at, run.end)
    return Availability(begin, end, sum(i.seconds for i in up), tuple(outages))
