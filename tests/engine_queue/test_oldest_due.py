"""The queue's oldest due delivery, for the alert on mail that waits (mamoru_queue_oldest_due)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.delivery.context import Engine
from engine.queue import NewBroadcast, Priority

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


async def test_oldest_due_counts_from_the_longest_waiting_of_any_priority(engine: Engine) -> None:
    q = engine.queue
    assert await q.oldest_due(NOW) == 0.0
    await q.enqueue(NewBroadcast("s@example.jp", "a", "b", ["x@example.jp"], Priority.BULK),
                    NOW - timedelta(minutes=10), 86400)
    await q.enqueue(NewBroadcast("s@example.jp", "a", "b", ["y@example.jp"], Priority.EMERGENCY),
                    NOW - timedelta(minutes=2), 86400)
    # A scheduled one is not due yet and does not count.
    await q.enqueue(NewBroadcast("s@example.jp", "a", "b", ["z@example.jp"],
                                 send_at=NOW + timedelta(hours=1)), NOW - timedelta(hours=1),
                    86400)
    assert await q.oldest_due(NOW) == 600.0
    await engine.pool.execute("UPDATE deliveries SET state = 'delivered' WHERE priority = 2")
    assert await q.oldest_due(NOW) == 120.0
