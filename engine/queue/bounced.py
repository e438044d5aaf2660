"""Deliveries that a bounce arriving later names: finding them, and failing those it undoes.

The inbound server calls these inside its own transaction (the bounce rows, this update and
the suppression list are written together), so they take the connection it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.platform.address import mask_addresses
from engine.platform.sealing import RECIPIENT, Sealer
from engine.queue.models import State

DELIVERIES_SQL = (
    "SELECT id, recipient_sealed, state FROM deliveries WHERE id = ANY($1::bigint[])"
)

# A mail that was accepted and bounced later did not arrive: it becomes failed with the
# bounce's verdict. That covers state 'delivered' and also 'sending': a receiving MX may bounce
# within milliseconds, before the runner has written the outcome of the very attempt it bounces.
# Such a row counts the attempt and loses its lease; the runner's own outcome for it is then not
# written (RECORD_SQL only writes rows still 'sending' under its lease), so the bounce wins.
# Failed rows already say why; queued and deferred rows were never accepted and are left alone.
LATE_FAILURE_SQL = """
UPDATE deliveries d
SET state = 'failed', reason = u.reason, category = u.category, last_code = u.code,
    last_status = u.status, last_text = u.text, finished_at = $1, updated_at = $1,
    attempts = d.attempts + CASE WHEN d.state = 'sending' THEN 1 ELSE 0 END,
    lease_owner = NULL
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
     AS u(id, reason, category, code, status, text)
WHERE d.id = u.id AND d.state IN ('delivered', 'sending')
RETURNING d.id
"""


@dataclass(frozen=True)
class BouncedDelivery:
    """The delivery a VERP address names, as a bounce needs it."""

    id: int
    recipient: str
    state: State


@dataclass(frozen=True)
class LateFailure:
    delivery_id: int
    reason: str
    category: str
    code: int | None
    status: str | None
    text: str


async def deliveries_by_id(
    conn: asyncpg.Connection, sealer: Sealer, ids: Sequence[int]
) -> dict[int, BouncedDelivery]:
    """Those of the deliveries ``ids`` that still exist (recipients opened)."""
    rows = await conn.fetch(DELIVERIES_SQL, list(ids))
    return {
        r["id"]: BouncedDelivery(
            r["id"], sealer.open(r["recipient_sealed"], RECIPIENT), State(r["state"])
        )
        for r in rows
    }


async def mark_failed_late(
    conn: asyncpg.Connection, at: datetime, failures: Sequence[LateFailure]
) -> list[int]:
    """Fail the delivered (or still sending) deliveries a bounce undoes; returns their ids."""
    if not failures:
        return []
    rows = await conn.fetch(
        LATE_FAILURE_SQL,
        at,
        [f.delivery_id for f in failures],
        [f.reason for f in failures],
        [f.category for f in failures],
        [f.code for f in failures],
        [f.status for f in failures],
        [mask_addresses(f.text) for f in failures],
    )
    return [r["id"] for r in rows]


__all__ = ["BouncedDelivery", "LateFailure", "deliveries_by_id", "mark_failed_late"]

