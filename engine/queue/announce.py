"""One log line per broadcast started and finished, written once among all serve hosts.

``log_broadcast_events`` is called every few seconds by serve (cli/services.py). A broadcast
*starts* when its send time has come and *finishes* when none of its deliveries is left to
send (queued, sending or deferred). The UPDATE that sets ``logged_start_at`` /
``logged_finish_at`` (migration 034) decides which host writes the line: under READ COMMITTED
a second host's UPDATE waits for the first and then finds the column set, so each line is
written once. Lines carry ids and counts, never an address or a subject.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from engine.platform.logs import fields
from engine.queue.models import Priority

log = logging.getLogger(__name__)

_STARTED_SQL = """
UPDATE broadcasts SET logged_start_at = $1
WHERE logged_finish_at IS NULL AND logged_start_at IS NULL AND send_at <= $1
RETURNING id, priority, recipient_count, suppressed_count, skipped, send_at
"""

_FINISHED_SQL = """
WITH done AS (
    UPDATE broadcasts b SET logged_finish_at = $1
    WHERE b.logged_finish_at IS NULL AND b.logged_start_at IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM deliveries d
          WHERE d.broadcast_id = b.id AND d.state IN ('queued', 'sending', 'deferred')
      )
    RETURNING b.id, b.priority, b.recipient_count, b.send_at, b.cancelled_at
)
SELECT done.*,
       (SELECT count(*) FROM deliveries d
        WHERE d.broadcast_id = done.id AND d.state = 'delivered') AS delivered,
       (SELECT count(*) FROM deliveries d
        WHERE d.broadcast_id = done.id AND d.state = 'failed') AS failed
FROM done ORDER BY done.id
"""


@dataclass(frozen=True)
class BroadcastEvent:
    event: str  # "broadcast.started" | "broadcast.finished"
    broadcast_id: int
    priority: str
    recipients: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    cancelled: bool = False


def _priority(value: int) -> str:
    return Priority(value).name.lower()


async def broadcast_events(pool: asyncpg.Pool, now: datetime) -> list[BroadcastEvent]:
    """The broadcasts that started or finished since the last call (by any host), each once."""
    events: list[BroadcastEvent] = []
    for r in await pool.fetch(_STARTED_SQL, now):
        skipped = r["skipped"]
        if isinstance(skipped, str):
            skipped = json.loads(skipped)
        counts = {"suppressed": int(r["suppressed_count"]),
                  "skipped": sum(int(v) for v in (skipped or {}).values())}
        events.append(BroadcastEvent("broadcast.started", int(r["id"]), _priority(r["priority"]),
                                     int(r["recipient_count"]), counts))
    for r in await pool.fetch(_FINISHED_SQL, now):
        events.append(BroadcastEvent(
            "broadcast.finished", int(r["id"]), _priority(r["priority"]),
            int(r["recipient_count"]),
            {"delivered": int(r["delivered"]), "failed": int(r["failed"])},
            round(max(0.0, (now - r["send_at"]).total_seconds()), 1),
            r["cancelled_at"] is not None,
        ))
    return events


async def log_broadcast_events(pool: asyncpg.Pool, now: datetime) -> int:
    """Write the lines of ``broadcast_events``; returns how many."""
    events = await broadcast_events(pool, now)
    for e in events:
        extra = fields(event=e.event, broadcast_id=e.broadcast_id, priority=e.priority,
                       recipients=e.recipients, seconds=e.seconds, cancelled=e.cancelled,
                       **e.counts)
        if e.event == "broadcast.started":
            log.info("配信開始 / broadcast %d started: %d recipients, priority %s "
                     "(suppressed %d, skipped %d)", e.broadcast_id, e.recipients, e.priority,
                     e.counts["suppressed"], e.counts["skipped"], extra=extra)
        else:
            how = "cancelled" if e.cancelled else "finished"
            log.info("配信終了 / broadcast %d %s after %.1f s: %d delivered, %d failed "
                     "of %d", e.broadcast_id, how, e.seconds or 0.0, e.counts["delivered"],
                     e.counts["failed"], e.recipients, extra=extra)
    return len(events)
