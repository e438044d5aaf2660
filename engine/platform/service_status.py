"""The last result of each periodic check, kept in the database so any process can report it.

``mamoru serve``'s daily tasks (the audit chain's verification, backups) write one row each
(``service_status``); ``/readyz`` (engine/delivery/health.py) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Status:
    name: str
    ok: bool
    at: datetime
    detail: str


async def record_status(
    pool: asyncpg.Pool, name: str, ok: bool, at: datetime, detail: str = ""
) -> None:
    await pool.execute(
        "INSERT INTO service_status (name, ok, at, detail) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (name) DO UPDATE SET ok = EXCLUDED.ok, at = EXCLUDED.at, "
        "detail = EXCLUDED.detail",
        name, ok, at, detail[:500],
    )


async def statuses(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, Status]:
    rows = await db.fetch("SELECT name, ok, at, detail FROM service_status")
    return {r["name"]: Status(r["name"], r["ok"], r["at"], r["detail"]) for r in rows}
