"""Following broadcasts up within one's rights: lists, counts by state and category, recipients.

Reads the queue's ``broadcasts`` and ``deliveries`` (never writes them) together with the
owners this package keeps; every function takes the acting ``Principal`` and shows only what
it may see (engine/staff/rights.py). A broadcast outside the rights is "not found".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from engine.bounce import CATEGORIES
from engine.platform.clock import JST, jst_text
from engine.platform.csv_io import csv_cell, csv_text
from engine.platform.errors import InputError
from engine.platform.sealing import RECIPIENT, Sealer
from engine.queue import BroadcastState, Priority, State
from engine.queue.broadcasts import (
    CANCELLED_LABEL_JA,
    REASON_CANCELLED,
    STATE_COUNTS_SQL,
    _state_of,
)
from engine.queue.models import STATE_LABELS_JA, tls_text
from engine.queue.store import LAST_TLS
from engine.staff.models import Principal
from engine.staff.rights import not_found, visibility, visible_sql


@dataclass(frozen=True)
class BroadcastRow:
    id: int
    created_at: datetime
    send_at: datetime
    sender: str
    subject: str
    priority: Priority
    category: str
    state: BroadcastState
    recipient_count: int
    suppressed_count: int
    cancelled_at: datetime | None
    organisation_id: int | None
    staff_id: int | None
    by_state: dict[State, int]
    resend_of: int | None = None


@dataclass(frozen=True)
class BroadcastFilter:
    category: str | None = None
    priority: Priority | None = None
    since: datetime | None = None
    until: datetime | None = None
    organisation_id: int | None = None


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= 1000 or offset < 0:
        raise InputError("limit は 1〜1000、offset は 0 以上です (limit 1-1000, offset >= 0)")


_LIST_WHERE = f"""
WHERE {visible_sql(1)}
  AND ($5::text IS NULL OR b.category = $5)
  AND ($6::smallint IS NULL OR b.priority = $6)
  AND ($7::timestamptz IS NULL OR b.created_at >= $7)
  AND ($8::timestamptz IS NULL OR b.created_at < $8)
  AND ($9::bigint IS NULL OR o.organisation_id = $9)
"""
_BROADCAST_COLUMNS = (
    "b.id, b.created_at, b.send_at, b.sender, b.subject, b.priority, b.category, "
    "b.recipient_count, b.suppressed_count, b.cancelled_at, o.organisation_id, o.staff_id, "
    "o.resend_of"
)


async def list_broadcasts(
    pool: asyncpg.Pool, actor: Principal, f: BroadcastFilter, now: datetime,
    limit: int = 50, offset: int = 0,
) -> tuple[int, list[BroadcastRow]]:
    """The total the actor may see under ``f`` and one page, newest first."""
    _page(limit, offset)
    args: list[Any] = [
        *visibility(actor), f.category, int(f.priority) if f.priority is not None else None,
        f.since, f.until, f.organisation_id,
    ]
    base = "FROM broadcasts b LEFT JOIN broadcast_owners o ON o.broadcast_id = b.id"
    total: int = await pool.fetchval(f"SELECT count(*) {base} {_LIST_WHERE}", *args)
    rows = await pool.fetch(
        f"SELECT {_BROADCAST_COLUMNS} {base} {_LIST_WHERE} ORDER BY b.id DESC "
        f"LIMIT $10 OFFSET $11",
        *args, limit, offset,
    )
    return total, await _with_counts(pool, rows, now)


# Still live: not cancelled, with deliveries left to send (found through the live rows' index,
# deliveries_live_by_broadcast, without counting anything).
_LIVE_SQL = (
    "b.cancelled_at IS NULL AND EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = b.id "
    "AND d.state IN ('queued', 'deferred', 'sending'))"
)


async def dashboard_broadcasts(
    pool: asyncpg.Pool, actor: Principal, now: datetime, recent: int = 10, window: int = 100,
) -> tuple[list[BroadcastRow], list[BroadcastRow]]:
    """Of the ``window`` newest broadcasts the actor may see: those made today (Japan time) or
    still scheduled or sending, and the ``recent`` newest others, each with its counts. Only
    these are counted: the rest of the history is not read on every visit."""
    args: list[Any] = [*visibility(actor), None, None, None, None, None]
    rows = await pool.fetch(
        f"SELECT {_BROADCAST_COLUMNS}, {_LIVE_SQL} AS live "
        "FROM broadcasts b LEFT JOIN broadcast_owners o ON o.broadcast_id = b.id "
        f"{_LIST_WHERE} ORDER BY b.id DESC LIMIT $10",
        *args, window,
    )
    today = now.astimezone(JST).date()
    current: list[Any] = []
    others: list[Any] = []
    for r in rows:
        if r["live"] or r["created_at"].astimezone(JST).date() == today:
            current.append(r)
        elif len(others) < recent:
            others.append(r)
    counted = {b.id: b for b in await _with_counts(pool, current + others, now)}
    return [counted[r["id"]] for r in current], [counted[r["id"]] for r in others]


async def _with_counts(pool: asyncpg.Pool, rows: list[Any], now: datetime) -> list[BroadcastRow]:
    counts: dict[int, dict[State, int]] = {r["id"]: {s: 0 for s in State} for r in rows}
    for c in await pool.fetch(STATE_COUNTS_SQL, list(counts)):
        counts[c["broadcast_id"]][State(c["state"])] = c["n"]
    return [_broadcast_row(r, counts[r["id"]], now) for r in rows]


# The broadcast's deliveries counted in one pass, by state, error category, whether they were
# cancelled and whether their sending was interrupted: a JSON array of [state, category,
# cancelled, count, interrupted] cells, as a column of the broadcast's own row (one statement
# per page): one pass over the broadcast's rows instead of one per count.
_CELLS = """
(SELECT coalesce(jsonb_agg(jsonb_build_array(x.state, x.category, x.cancelled, x.n, x.i)),
                 '[]'::jsonb)
 FROM (SELECT d.state, d.category, coalesce(d.reason = 'cancelled', false) AS cancelled,
              count(*) AS n, count(*) FILTER (WHERE d.state = 'failed' AND d.interrupted) AS i
       FROM deliveries d WHERE d.broadcast_id = b.id GROUP BY 1, 2, 3) x) AS cells
"""
_ONE_SQL = (
    f"SELECT {_BROADCAST_COLUMNS}, {{more}} FROM broadcasts b "
    f"LEFT JOIN broadcast_owners o ON o.broadcast_id = b.id "
    f"WHERE b.id = $5 AND {visible_sql(1)}"
)


@dataclass(frozen=True)
class Cell:
    """How many of a broadcast's deliveries are in ``state`` with ``category`` (None: no error
    category), cancelled or not; ``interrupted``: of them, failed ones whose sending was
    interrupted (they may have arrived)."""

    state: State
    category: str | None
    cancelled: bool
    count: int
    interrupted: int = 0


def _cells(value: Any) -> tuple[Cell, ...]:
    cells = json.loads(value) if isinstance(value, str) else value
    return tuple(Cell(State(s), c, bool(x), int(n), int(i)) for s, c, x, n, i in cells or ())


def _by_state(cells: tuple[Cell, ...]) -> dict[State, int]:
    out = {s: 0 for s in State}
    for c in cells:
        out[c.state] += c.count
    return out


def _broadcast_row(r: Any, by_state: dict[State, int], now: datetime) -> BroadcastRow:
    return BroadcastRow(
        id=r["id"], created_at=r["created_at"], send_at=r["send_at"], sender=r["sender"],
        subject=r["subject"], priority=Priority(r["priority"]), category=r["category"],
        state=_state_of(r["cancelled_at"], r["send_at"], by_state, now),
        recipient_count=r["recipient_count"], suppressed_count=r["suppressed_count"],
        cancelled_at=r["cancelled_at"], organisation_id=r["organisation_id"],
        staff_id=r["staff_id"], by_state=by_state, resend_of=r["resend_of"],
    )


async def visible_broadcast(
    pool: asyncpg.Pool, actor: Principal, broadcast_id: int, now: datetime
) -> BroadcastRow:
    """The broadcast if ``actor`` may see it; else (unknown, another school's or another
    board's) the same NotFoundError."""
    row = await pool.fetchrow(_ONE_SQL.format(more=_CELLS), *visibility(actor), broadcast_id)
    if row is None:
        raise not_found(f"配信 {broadcast_id} ")
    return _broadcast_row(row, _by_state(_cells(row["cells"])), now)


async def check_visible(pool: asyncpg.Pool, actor: Principal, broadcast_id: int) -> None:
    """NotFoundError unless ``actor`` may see the broadcast (visible_broadcast without the
    counts)."""
    if await pool.fetchrow(_ONE_SQL.format(more="1"), *visibility(actor), broadcast_id) is None:
        raise not_found(f"配信 {broadcast_id} ")


@dataclass(frozen=True)
class CategoryCount:
    category: str
    label_ja: str
    state: State
    count: int


@dataclass(frozen=True)
class Status:
    broadcast: BroadcastRow
    by_category: list[CategoryCount]
    skipped: dict[str, int]
    # The text and audience, to show it and to copy it into a new broadcast.
    body: str = ""
    audience: dict[str, Any] | None = None
    # Failed deliveries whose sending was interrupted (migration 020): they may have arrived.
    may_have_arrived: int = 0
    # Every count (by_state and by_category are sums of them): recipients_of's totals.
    cells: tuple[Cell, ...] = ()


def category_label(category: str | None, reason: str | None) -> str:
    if category is not None and category in CATEGORIES:
        return CATEGORIES[category].label_ja
    if reason == REASON_CANCELLED:
        return CANCELLED_LABEL_JA
    return ""


async def status(pool: asyncpg.Pool, actor: Principal, broadcast_id: int, now: datetime) -> Status:
    """Counts by state and by error category (live: read from the deliveries each time), in
    one statement with the broadcast's row."""
    row = await pool.fetchrow(
        _ONE_SQL.format(more=f"b.skipped, b.body, b.audience, {_CELLS}"),
        *visibility(actor), broadcast_id,
    )
    if row is None:
        raise not_found(f"配信 {broadcast_id} ")
    cells = _cells(row["cells"])
    by_category: dict[tuple[str, State], int] = {}
    for c in cells:
        key = c.category if c.category is not None else (
            REASON_CANCELLED if c.cancelled else None)
        if key is not None:
            by_category[key, c.state] = by_category.get((key, c.state), 0) + c.count
    skipped = _json(row["skipped"]) or {}
    return Status(
        _broadcast_row(row, _by_state(cells), now),
        [
            CategoryCount(c, category_label(c, c), state, n)
            for (c, state), n in sorted(by_category.items(), key=lambda i: (i[0][0], i[0][1]))
        ],
        {str(k): int(v) for k, v in skipped.items()},
        row["body"],
        _json(row["audience"]),
        sum(c.interrupted for c in cells),
        cells,
    )


def _json(value: Any) -> dict[str, Any] | None:
    """A jsonb column as asyncpg returns it (text unless a codec is set)."""
    if value is None:
        return None
    return dict(json.loads(value) if isinstance(value, str) else value)


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    address: str
    state: State
    attempts: int
    last_code: int | None
    last_status: str | None
    last_text: str | None
    reason: str | None
    category: str | None
    category_label_ja: str
    updated_at: datetime
    finished_at: datetime | None
    # Failed, but its sending was interrupted: it may have arrived (migration 020).
    may_have_arrived: bool = False
    # Whether its latest attempt went over TLS; None: no attempt reached a server.
    tls: bool | None = None


@dataclass(frozen=True)
class RecipientFilter:
    state: State | None = None
    category: str | None = None
    # Only failed and deferred ones (the "who did not get it" list).
    failed_only: bool = False
    # Only those whose error category is a temporary one (mailbox full, refused ...).
    temporary_only: bool = False
    # Only these addresses (those of some grades or classes: engine.people.recipients).
    addresses: tuple[str, ...] | None = None
    # Only delivered ones not read yet (read confirmation, engine/twoway) / whose children (or,
    # for an address of no account, the contact) have not answered the broadcast's questions.
    unread: bool = False
    unanswered: bool = False


_RECIPIENT_WHERE = """
WHERE broadcast_id = $1
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR category = $3 OR ($3 = 'cancelled' AND reason = 'cancelled'))
  AND (NOT $4 OR state IN ('failed', 'deferred'))
  AND ($5::text[] IS NULL OR category = ANY($5::text[]))
  AND ($6::bytea[] IS NULL OR recipient_hash = ANY($6::bytea[]))
  AND (NOT $7 OR (state = 'delivered' AND NOT EXISTS (
      SELECT 1 FROM delivery_reads r WHERE r.delivery_id = deliveries.id)))
  AND (NOT $8 OR (state = 'delivered' AND CASE
      WHEN EXISTS (SELECT 1 FROM delivery_accounts da WHERE da.delivery_id = deliveries.id)
      THEN EXISTS (SELECT 1 FROM delivery_accounts da WHERE da.delivery_id = deliveries.id
                   AND NOT EXISTS (SELECT 1 FROM survey_responses s
                                   WHERE s.broadcast_id = $1 AND s.account_id = da.account_id))
      ELSE NOT EXISTS (SELECT 1 FROM delivery_contacts dc JOIN survey_responses s
                       ON s.broadcast_id = $1 AND s.account_id IS NULL
                       AND s.contact_id = dc.contact_id
                       WHERE dc.delivery_id = deliveries.id) END))
"""

# The categories whose failures may pass (engine.bounce: not hard).
TEMPORARY_CATEGORIES = sorted(key for key, c in CATEGORIES.items() if not c.hard)


async def recipients(
    pool: asyncpg.Pool, sealer: Sealer, actor: Principal, broadcast_id: int, f: RecipientFilter,
    now: datetime, limit: int = 100, offset: int = 0,
) -> tuple[int, list[Recipient]]:
    """How many recipients ``f`` selects and one page of them (in delivery order)."""
    _page(limit, offset)
    await check_visible(pool, actor, broadcast_id)
    return await _recipients(pool, sealer, broadcast_id, f, None, limit, offset)


async def recipients_of(
    pool: asyncpg.Pool, sealer: Sealer, st: Status, f: RecipientFilter, limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[Recipient]]:
    """``recipients`` of a broadcast whose ``status`` was just read (so visible): the total
    comes from its counts when ``f`` needs no more than state and category."""
    _page(limit, offset)
    return await _recipients(pool, sealer, st.broadcast.id, f, known_total(st, f), limit, offset)


def known_total(st: Status, f: RecipientFilter) -> int | None:
    """How many recipients ``f`` selects, from the status's counts; None when it needs the
    deliveries themselves (addresses, reads, answers)."""
    if f.addresses is not None or f.unread or f.unanswered or not st.cells:
        return None
    temporary = set(TEMPORARY_CATEGORIES)
    return sum(
        c.count for c in st.cells
        if (f.state is None or c.state is f.state)
        and (f.category is None or c.category == f.category
             or (f.category == REASON_CANCELLED and c.cancelled))
        and (not f.failed_only or c.state in (State.FAILED, State.DEFERRED))
        and (not f.temporary_only or c.category in temporary)
    )


async def _recipients(
    pool: asyncpg.Pool, sealer: Sealer, broadcast_id: int, f: RecipientFilter,
    total: int | None, limit: int | None, offset: int,
) -> tuple[int, list[Recipient]]:
    """``total`` when known and the page (``limit`` None: all of them)."""
    args = [
        broadcast_id, f.state.value if f.state else None, f.category, f.failed_only,
        TEMPORARY_CATEGORIES if f.temporary_only else None,
        [sealer.address_hash(a) for a in f.addresses] if f.addresses is not None else None,
        f.unread, f.unanswered,
    ]
    # The matching ids first, through the broadcast's index (never the whole table in id
    # order, which the planner would pick for "ORDER BY id LIMIT" once there is history), then
    # the page of them; without a known total the same statement counts them.
    counted = "NULL::bigint" if total is not None else "(SELECT count(*) FROM m)"
    rows = await pool.fetch(
        f"WITH m AS MATERIALIZED (SELECT id FROM deliveries {_RECIPIENT_WHERE}) "
        "SELECT id, recipient_sealed, state, attempts, last_code, last_status, last_text, reason, "
        "category, updated_at, finished_at, state = 'failed' AND interrupted AS may_have_arrived, "
        f"{LAST_TLS} AS tls, {counted} AS total "
        "FROM (SELECT id FROM m ORDER BY id LIMIT $9 OFFSET $10) p JOIN deliveries USING (id) "
        "ORDER BY id",
        *args, limit, offset,
    )
    if total is None:
        total = rows[0]["total"] if rows else (
            0 if offset == 0 else await pool.fetchval(
                f"SELECT count(*) FROM deliveries {_RECIPIENT_WHERE}", *args))
    return total, [
        Recipient(
            r["id"], sealer.open(r["recipient_sealed"], RECIPIENT), State(r["state"]),
            r["attempts"], r["last_code"],
            r["last_status"], r["last_text"], r["reason"], r["category"],
            category_label(r["category"], r["reason"]), r["updated_at"], r["finished_at"],
            r["may_have_arrived"], r["tls"],
        )
        for r in rows
    ]


CSV_HEADER = [
    "宛先", "アカウント", "状態", "試行回数", "応答コード", "拡張ステータス", "理由", "分類",
    "応答", "暗号化 (TLS)", "更新日時", "完了日時", "備考",
]
#: The note of a failed delivery whose sending was interrupted (migration 020).
MAY_HAVE_ARRIVED_JA = "送信中に処理が中断したため、届いている可能性があります"


def recipients_csv(rows: list[Recipient], accounts: dict[str, str] | None = None) -> str:
    """Recipients as CSV for Excel: UTF-8 with BOM, Japanese labels, Japan time; ``accounts``
    gives the accounts column by address."""
    return csv_text(CSV_HEADER, (
        [
            r.address, csv_cell((accounts or {}).get(r.address, "")),
            STATE_LABELS_JA[r.state], r.attempts, r.last_code or "", r.last_status or "",
            r.reason or "", r.category_label_ja, csv_cell(r.last_text or ""),
            tls_text(r.tls), jst_text(r.updated_at), jst_text(r.finished_at),
            MAY_HAVE_ARRIVED_JA if r.may_have_arrived else "",
        ]
        for r in rows
    ))


async def all_recipients(
    pool: asyncpg.Pool, sealer: Sealer, actor: Principal, broadcast_id: int, f: RecipientFilter,
    now: datetime,
) -> list[Recipient]:
    """Every recipient under ``f`` (for CSV), in one statement: the matching ids are collected
    once (pages of 1,000 collected and counted them again for each page: 20 statements and
    ~0.4 s for 20,000 recipients with 8,000,000 older deliveries)."""
    await check_visible(pool, actor, broadcast_id)
    _, out = await _recipients(pool, sealer, broadcast_id, f, None, None, 0)
    return out


async def owner_of(pool: asyncpg.Pool, broadcast_id: int) -> tuple[int | None, int | None]:
    row = await pool.fetchrow(
        "SELECT organisation_id, staff_id FROM broadcast_owners WHERE broadcast_id = $1",
        broadcast_id,
    )
    return (row["organisation_id"], row["staff_id"]) if row else (None, None)
