"""Readiness: is this deployment able to deliver emergency mail right now?

``/readyz`` (admin_api/health.py) answers from any process, from the database alone:

    database  answers within two seconds
    runners   at least one runner announced itself recently (heartbeats, engine/queue)
    blocks    no (egress address, site) has been blocked longer than ``block_alarm``
    audit     the daily verification of the audit chain (engine/staff/audit_keeper.py) last
              found it intact, and not more than two days ago
    backup    when serve makes daily backups: the last one succeeded less than a day ago

Each check says why in Japanese; the first that fails makes the whole answer "not ready".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.delivery._upkeep import STALE_SECONDS
from engine.platform.clock import jst_text
from engine.platform.outage import DATABASE_ERRORS
from engine.platform.service_status import statuses

AUDIT_STATUS = "audit"  # written by engine/staff/audit_keeper.py
BACKUP_STATUS = "backup"
_DB_TIMEOUT = 2.0
_DOWN: tuple[type[BaseException], ...] = (TimeoutError, *DATABASE_ERRORS)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())


async def readiness(
    pool: asyncpg.Pool,
    now: datetime,
    block_alarm: float = 1800.0,
    backup_expected: bool = False,
) -> Readiness:
    """The checks above, in one short read transaction."""
    try:
        return await asyncio.wait_for(_checks(pool, now, block_alarm, backup_expected),
                                      _DB_TIMEOUT)
    except _DOWN as exc:
        down = f"データベースに接続できません ({exc!r})"[:300]
        return Readiness({"database": Check(False, down)})


async def _checks(
    pool: asyncpg.Pool, now: datetime, block_alarm: float, backup_expected: bool
) -> Readiness:
    checks: dict[str, Check] = {"database": Check(True, "応答あり")}
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        live = await conn.fetchval(
            "SELECT count(*) FROM runners WHERE heartbeat_at > $1",
            now - timedelta(seconds=2 * STALE_SECONDS),
        )
        blocked = await conn.fetch(
            "SELECT DISTINCT source, site, blocked_since FROM shaping_state "
            "WHERE blocked_until IS NOT NULL AND blocked_since < $1 AND updated_at > $2 "
            "ORDER BY blocked_since",
            now - timedelta(seconds=block_alarm), now - timedelta(seconds=4 * STALE_SECONDS),
        )
        found = await statuses(conn)
    checks["runners"] = (
        Check(True, f"配信プロセス {live} 個が稼働中") if live
        else Check(False, "配信プロセスが動いていません (no runner heartbeat)")
    )
    checks["blocks"] = Check(True, "長く続くブロックはありません") if not blocked else Check(
        False, "受信拒否 (ブロック) が続いています: " + ", ".join(
            f"{r['site']} ({r['source']}, {jst_text(r['blocked_since'])} から)" for r in blocked
        ),
    )
    audit = found.get(AUDIT_STATUS)
    if audit is None:
        checks["audit"] = Check(True, "監査ログはまだ検証されていません (初回の検証待ち)")
    elif not audit.ok:
        checks["audit"] = Check(False, f"監査ログが壊れています: {audit.detail}")
    elif audit.at < now - timedelta(days=2):
        checks["audit"] = Check(
            False, f"監査ログの検証が {jst_text(audit.at)} から行われていません"
        )
    else:
        checks["audit"] = Check(True, f"監査ログは正常 ({jst_text(audit.at)} に確認)")
    backup = found.get(BACKUP_STATUS)
    if not backup_expected:
        checks["backup"] = Check(True, "毎日のバックアップは設定されていません")
    elif backup is None or not backup.ok or backup.at < now - timedelta(days=1):
        when = jst_text(backup.at) if backup is not None else "なし"
        checks["backup"] = Check(
            False, f"1 日以内に成功したバックアップがありません (最後: {when})"
        )
    else:
        checks["backup"] = Check(True, f"バックアップ {jst_text(backup.at)}")
    return Readiness(checks)
