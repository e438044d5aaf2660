"""The error report: why mails failed, grouped by operator category, with a few examples each.

What counts as an error:

- every delivery in state ``failed`` (its own reply, expiry, a bounce that arrived later, or
  the suppression list), under its category, except those failed because the operator
  cancelled their broadcast (reason ``cancelled``);
- every classified bounce whose delivery is not failed (a delay notice, an auto-reply, a
  complaint, or a bounce whose delivery is gone), under the bounce's category; a bounce that
  made its delivery fail is counted once, through the delivery.

``suppressed`` counts, per category, the errors whose address is on the suppression list
because of them (the list's row names their delivery) or was on it already (the delivery
was never sent): what the list itself says, not a guess from the reason.

Unclassified bounces are counted apart (``unclassified``): a person has to read them.
The result is plain JSON-serialisable data; the CLI prints it and the admin API serves it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.bounce.classify.categories import CATEGORIES, OTHER
from engine.platform.errors import QueueError
from engine.platform.sealing import RECIPIENT, Sealer

# One statement: the failures, each category's totals (window counts) and its newest examples.
REPORT_SQL = """
WITH listed AS (
    -- Deliveries whose failure, bounce or complaint put their address on the list.
    SELECT delivery_id FROM suppressions WHERE delivery_id IS NOT NULL
),
failures AS (
    SELECT COALESCE(d.category, 'other') AS category, d.reason, d.recipient_sealed AS address,
           d.last_code AS code, d.last_status AS status, d.last_text AS text,
           COALESCE(d.finished_at, d.updated_at) AS at,
           d.reason = 'suppressed' OR d.id IN (SELECT delivery_id FROM listed) AS suppressed
    FROM deliveries d
    -- A cancelled delivery is the operator's own decision, not a failure to explain.
    WHERE d.state = 'failed' AND d.reason IS DISTINCT FROM 'cancelled'
      AND ($1::bigint IS NULL OR d.broadcast_id = $1)
      AND ($2::timestamptz IS NULL OR COALESCE(d.finished_at, d.updated_at) >= $2)
    UNION ALL
    SELECT COALESCE(b.category, 'other'), b.reason,
           COALESCE(d.recipient_sealed, b.recipient_sealed),
           b.reply_code, b.status, b.diagnostic, b.received_at,
           b.delivery_id IN (SELECT delivery_id FROM listed)
    FROM bounces b LEFT JOIN deliveries d ON d.id = b.delivery_id
    WHERE b.classified AND b.reason <> 'delivered'
      AND (d.id IS NULL OR d.state <> 'failed')
      AND ($1::bigint IS NULL OR d.broadcast_id = $1)
      AND ($2::timestamptz IS NULL OR b.received_at >= $2)
),
ranked AS (
    SELECT f.*,
           count(*) OVER (PARTITION BY category) AS total,
           count(*) FILTER (WHERE suppressed) OVER (PARTITION BY category) AS suppressed_total,
           row_number() OVER (PARTITION BY category ORDER BY at DESC, address) AS rn
    FROM failures f
)
SELECT * FROM ranked WHERE rn <= GREATEST($3, 1) ORDER BY category, rn
"""

UNCLASSIFIED_SQL = """
SELECT count(*) FROM bounces b LEFT JOIN deliveries d ON d.id = b.delivery_id
WHERE NOT b.classified
  AND ($1::bigint IS NULL OR d.broadcast_id = $1)
  AND ($2::timestamptz IS NULL OR b.received_at >= $2)
"""


async def error_report(
    pool: asyncpg.Pool,
    sealer: Sealer,
    broadcast_id: int | None,
    since: datetime | None,
    examples: int = 3,
) -> dict[str, Any]:
    """Failures grouped by category (in the operators' order), as JSON-serialisable data."""
    if broadcast_id is not None:
        exists = await pool.fetchval("SELECT 1 FROM broadcasts WHERE id = $1", broadcast_id)
        if not exists:
            raise QueueError(f"there is no broadcast {broadcast_id}")
    rows = await pool.fetch(REPORT_SQL, broadcast_id, since, examples)
    unclassified: int = await pool.fetchval(UNCLASSIFIED_SQL, broadcast_id, since)
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = r["category"] if r["category"] in CATEGORIES else OTHER
        group = groups.get(key)
        if group is None:
            category = CATEGORIES[key]
            group = groups[key] = {
                "key": key,
                "label": category.label_ja,
                "hard": category.hard,
                "count": 0,
                "suppressed": 0,
                "examples": [],
            }
        if r["rn"] == 1:
            # An unknown category folded into "other" adds its totals to it.
            group["count"] += r["total"]
            group["suppressed"] += r["suppressed_total"]
        if r["rn"] <= examples and len(group["examples"]) < examples:
            group["examples"].append(
                {
                    "address": None if r["address"] is None
                    else sealer.open(r["address"], RECIPIENT),
                    "reason": r["reason"],
                    "code": r["code"],
                    "status": r["status"],
                    "text": r["text"],
                    "at": r["at"].isoformat() if r["at"] else None,
                }
            )
    ordered = [groups[k] for k in CATEGORIES if k in groups]
    return {
        "broadcast_id": broadcast_id,
        "since": since.isoformat() if since else None,
        "total": sum(g["count"] for g in ordered),
        "unclassified": unclassified,
        "categories": ordered,
    }


__all__ = ["error_report"]
