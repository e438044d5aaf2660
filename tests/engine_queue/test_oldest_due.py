"""The queue's oldest due delivery, for the alert on mail that waits (mamoru_queue_oldest_due)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.delivery.context import Engine
from engine.queue import NewBroadcast, Priority, State

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


async def test_live_state_counts_leave_the_finished_rows_out(engine: Engine) -> None:
    """The metrics' every-round count: only queued, deferred and sending (the live rows'
    partial index); the finished ones come from ``state_counts`` once a minute."""
    q = engine.queue
    await q.enqueue(NewBroadcast("s@example.jp", "a", "b",
                                 [f"r{i}@example.jp" for i in range(5)]), NOW, 86400)
    await engine.pool.execute(
        "UPDATE deliveries SET state = 'delivered' "
        "WHERE id IN (SELECT id FROM deliveries ORDER BY id LIMIT 2)")
    await engine.pool.execute(
        "UPDATE deliveries SET state = 'deferred' WHERE id = (SELECT max(id) FROM deliveries)")
    live = await q.live_state_counts()
    assert live == {State.QUEUED: 2, State.DEFERRED: 1, State.SENDING: 0}
    every = await q.state_counts()
    assert every[State.DELIVERED] == 2 and every[State.QUEUED] == 2
