"""The audit log: every staff action, chained by a keyed hash so that tampering shows.

Each entry records who acted (a staff member, an API key or the command line), what they did,
to which object, when, from which address and with what result. Entries are numbered without
gaps (``seq``) and each carries ``mac = HMAC-SHA256(key, prev_mac || fields)``, where
``prev_mac`` is the previous entry's mac (32 zero bytes for the first). ``verify`` walks the
chain and names the first entry that was altered (its mac no longer matches) or is missing (a
gap in the numbers). Whoever can write the database but does not hold the key cannot repair
the chain after changing a row. The key is ``[staff] audit_key``, else the key file
``[staff] audit_key_file`` (``engine.staff.audit_keys``): never in the database, so that
someone who can write the database cannot rewrite the whole chain either.

``prune`` removes entries older than ``[staff] audit_keep`` (at least 90 days) and keeps the
last removed entry's number and mac in ``audit_anchor``, where the chain then starts; the
anchor is sealed with the key (``HMAC(key, "anchor" || seq || mac)``), so dropping the oldest
entries and writing a new start needs the key too. Removing the newest entries cannot be told
from their never having been written by the chain alone: the head is written to a checkpoint
file outside the database once a day (``engine.staff.audit_checkpoints``), and ``verify``
checks those checkpoints.

Entries are appended under a transaction-level advisory lock, so concurrent writers chain
one after another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from engine.platform import csv_io
from engine.platform.clock import jst_text
from engine.platform.errors import InputError
from engine.staff.models import Principal
from engine.staff.rights import SINGLE_BOARD

GENESIS = bytes(32)
# pg_advisory_xact_lock key: "mamoru audit" — any constant shared by all writers.
_LOCK = 0x6D616D617564
_COLUMNS = (
    "seq, at, actor_kind, actor_id, actor_name, organisation_id, action, object, address, "
    "result, detail, prev_mac, mac"
)


class Result:
    """The result column's values."""

    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


RESULT_LABELS_JA = {Result.OK: "成功", Result.DENIED: "権限なし・認証失敗", Result.FAILED: "失敗"}


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor_kind: str
    actor_id: int | None
    actor_name: str
    organisation_id: int | None
    action: str
    object: str
    address: str
    result: str
    detail: str


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: ``first_bad`` is None when the whole chain holds."""

    checked: int
    first_bad: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def summary_ja(self) -> str:
        if self.ok:
            return f"監査ログは改ざんされていません: {self.checked} 件を確認 (audit log intact)"
        return f"監査ログの {self.first_bad} 番: {self.problem}"


def anchor_seal(key: bytes, seq: int, mac: bytes) -> bytes:
    """The seal of a chain start: only the key's holder can move where the chain starts."""
    return hmac.new(key, b"anchor" + seq.to_bytes(8, "big") + mac, hashlib.sha256).digest()


def _mac(key: bytes, prev: bytes, e: AuditEntry) -> bytes:
    fields = [
        e.seq, e.at.astimezone(UTC).isoformat(), e.actor_kind, e.actor_id, e.actor_name,
        e.organisation_id, e.action, e.object, e.address, e.result, e.detail,
    ]
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, prev + payload, hashlib.sha256).digest()


async def record(
    pool: asyncpg.Pool,
    key: bytes,
    at: datetime,
    actor: Principal,
    action: str,
    object: str = "",
    result: str = Result.OK,
    detail: str = "",
) -> int:
    """Append one entry to the chain; returns its number."""
    async with pool.acquire() as conn, conn.transaction():
        return await record_in(conn, key, at, actor, action, object, result, detail)


async def record_in(
    conn: asyncpg.Connection,
    key: bytes,
    at: datetime,
    actor: Principal,
    action: str,
    object: str = "",
    result: str = Result.OK,
    detail: str = "",
) -> int:
    """``record`` inside the caller's transaction: the entry commits with the caller's work or
    not at all (the chain's lock is held until then)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
    last = await conn.fetchrow("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
    if last is None:
        last = await conn.fetchrow("SELECT seq, mac FROM audit_anchor")
    seq, prev = (last["seq"] + 1, bytes(last["mac"])) if last else (1, GENESIS)
    # PostgreSQL keeps microseconds: the mac must be computed over what is stored.
    entry = AuditEntry(
        seq, at.astimezone(UTC), actor.kind.value, actor.id, actor.name,
        actor.organisation_id, action, object, actor.address, result, detail,
    )
    await conn.execute(
        f"INSERT INTO audit_log ({_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        entry.seq, entry.at, entry.actor_kind, entry.actor_id, entry.actor_name,
        entry.organisation_id, entry.action, entry.object, entry.address, entry.result,
        entry.detail, prev, _mac(key, prev, entry),
    )
    return seq


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        r["seq"], r["at"], r["actor_kind"], r["actor_id"], r["actor_name"],
        r["organisation_id"], r["action"], r["object"], r["address"], r["result"], r["detail"],
    )


async def _board_orgs(conn: asyncpg.Connection, board_id: int) -> set[int | None]:
    """The organisations of the board (with None, the command line's, while it is the only
    board), for ``verify`` to tell which entries the board may read."""
    orgs: set[int | None] = {
        r["id"] for r in await conn.fetch(
            "SELECT id FROM organisations WHERE id = $1 OR parent_id = $1", board_id
        )
    }
    if await conn.fetchval(f"SELECT {SINGLE_BOARD}"):
        orgs.add(None)
    return orgs


async def verify(pool: asyncpg.Pool, key: bytes, board_id: int | None = None) -> Verification:
    """Walk the chain from its start (or the prune anchor); stop at the first bad entry.

    The chain is one for the whole database, so it is always walked whole; with ``board_id``
    only that board's entries are counted and a bad entry of another board is named by its
    number alone (what it was and who made it stay that board's)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        mine: set[int | None] | None = None
        if board_id is not None:
            mine = await _board_orgs(conn, board_id)
        anchor = await conn.fetchrow("SELECT seq, mac, seal FROM audit_anchor")
        if anchor is not None and not (
            anchor["seal"] is not None
            and hmac.compare_digest(
                bytes(anchor["seal"]), anchor_seal(key, anchor["seq"], bytes(anchor["mac"]))
            )
        ):
            return Verification(
                0, anchor["seq"] + 1,
                "記録の始まり (整理後の起点) が鍵なしで書き換えられています (the chain's start "
                f"after pruning, entry {anchor['seq']}, is not sealed with the key: the oldest "
                "entries were removed or the start was moved)",
            )
        expected, prev = (anchor["seq"] + 1, bytes(anchor["mac"])) if anchor else (1, GENESIS)
        checked = 0
        async for r in conn.cursor(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq"):
            if r["seq"] != expected:
                return Verification(
                    checked, expected,
                    f"この番号の記録がありません (entry {expected} is missing; the next one "
                    f"is {r['seq']})",
                )
            entry = _entry(r)
            visible = mine is None or entry.organisation_id in mine
            if bytes(r["prev_mac"]) != prev or not hmac.compare_digest(
                bytes(r["mac"]), _mac(key, prev, entry)
            ):
                if not visible:
                    return Verification(
                        checked, entry.seq,
                        f"記録が書き換えられています (entry {entry.seq} was altered)",
                    )
                return Verification(
                    checked, entry.seq,
                    f"記録が書き換えられています (entry {entry.seq} was altered: "
                    f"{jst_text(entry.at)} (日本時間) {entry.action} by "
                    f"{entry.actor_name})",
                )
            prev = bytes(r["mac"])
            expected += 1
            checked += visible
    return Verification(checked)


async def head(pool: asyncpg.Pool) -> tuple[int, str] | None:
    """The newest entry's number and mac (hex), to be kept elsewhere if wanted."""
    r = await pool.fetchrow("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
    return (r["seq"], bytes(r["mac"]).hex()) if r else None


@dataclass(frozen=True)
class AuditFilter:
    organisation_id: int | None = None
    action: str | None = None
    actor_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    result: str | None = None
    # Only the entries of this board and its schools (a board is a tenant); the command line's
    # (no organisation) too while it is the only board. None: every entry.
    board_id: int | None = None


_WHERE = f"""
WHERE ($1::bigint IS NULL OR organisation_id = $1)
  AND ($2::text IS NULL OR action = $2)
  AND ($3::text IS NULL OR actor_name = $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
  AND ($6::text IS NULL OR result = $6)
  AND ($7::bigint IS NULL
       OR organisation_id IN (SELECT id FROM organisations WHERE id = $7 OR parent_id = $7)
       OR (organisation_id IS NULL AND {SINGLE_BOARD}))
"""


def _args(f: AuditFilter) -> list[Any]:
    return [f.organisation_id, f.action, f.actor_name, f.since, f.until, f.result, f.board_id]


async def entries(
    pool: asyncpg.Pool, f: AuditFilter, limit: int = 100, offset: int = 0,
    count_up_to: int | None = None,
) -> tuple[int, list[AuditEntry]]:
    """The total matching ``f`` and one page of them, newest first. With ``count_up_to`` the
    count stops there: a total above it (``count_up_to + 1``) means "more than that" — a
    year of a board's log is a million entries, and counting every one of them for each page
    costs ~0.2-0.3 s where the newest 10,001 cost a few milliseconds."""
    if limit < 1 or limit > 1000 or offset < 0:
        raise InputError("limit は 1〜1000、offset は 0 以上です (limit 1-1000, offset >= 0)")
    if count_up_to is None:
        total: int = await pool.fetchval(
            f"SELECT count(*) FROM audit_log {_WHERE}", *_args(f))
    else:
        total = await pool.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM audit_log {_WHERE} "
            "ORDER BY seq DESC LIMIT $8) AS newest",
            *_args(f), count_up_to + 1,
        )
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM audit_log {_WHERE} ORDER BY seq DESC LIMIT $8 OFFSET $9",
        *_args(f), limit, offset,
    )
    return total, [_entry(r) for r in rows]


async def newest(pool: asyncpg.Pool, f: AuditFilter) -> AuditEntry | None:
    """The newest entry matching ``f`` (nothing counted)."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM audit_log {_WHERE} ORDER BY seq DESC LIMIT 1", *_args(f))
    return _entry(row) if row is not None else None


CSV_HEADER = ["番号", "日時", "操作者の種別", "操作者", "操作", "対象", "接続元", "結果", "詳細"]


def csv_text(rows: list[AuditEntry]) -> str:
    """Entries as CSV for Excel: UTF-8 with BOM, Japan time, oldest first."""
    return csv_io.csv_text(CSV_HEADER, (
        [
            e.seq, jst_text(e.at), e.actor_kind, csv_io.csv_cell(e.actor_name),
            e.action, csv_io.csv_cell(e.object), e.address,
            RESULT_LABELS_JA.get(e.result, e.result), csv_io.csv_cell(e.detail),
        ]
        for e in sorted(rows, key=lambda e: e.seq)
    ))


async def export(pool: asyncpg.Pool, f: AuditFilter) -> str:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM audit_log {_WHERE} ORDER BY seq", *_args(f))
    return csv_text([_entry(r) for r in rows])


async def prune(pool: asyncpg.Pool, key: bytes, now: datetime, keep: timedelta) -> int:
    """Remove entries older than ``keep`` (at least 90 days); the chain restarts after them."""
    if keep < timedelta(days=90):
        raise InputError("監査ログは 90 日以上残します (audit entries are kept at least 90 days)")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        last = await conn.fetchrow(
            "SELECT seq, mac FROM audit_log WHERE at < $1 ORDER BY seq DESC LIMIT 1", now - keep
        )
        if last is None:
            return 0
        status: str = await conn.execute("DELETE FROM audit_log WHERE seq <= $1", last["seq"])
        await conn.execute(
            "INSERT INTO audit_anchor (id, seq, mac, seal) VALUES (true, $1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, mac = EXCLUDED.mac, "
            "seal = EXCLUDED.seal",
            last["seq"], last["mac"], anchor_seal(key, last["seq"], bytes(last["mac"])),
        )
    return int(status.split()[-1])
