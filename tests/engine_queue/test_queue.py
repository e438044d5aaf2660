from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from engine.delivery.context import Engine
from engine.platform.errors import QueueError
from engine.queue import AttemptResult, NewBroadcast, Outcome, Priority, State


def broadcast(n: int, priority: Priority = Priority.NORMAL, prefix: str = "g") -> NewBroadcast:
    return NewBroadcast(
        sender="school@example.jp",
        subject="休校のお知らせ",
        body="本日は台風のため休校です。\n",
        recipients=[f"{prefix}{i}@example.jp" for i in range(n)],
        priority=priority,
    )


async def test_fan_out_creates_one_delivery_per_recipient_in_one_go(engine: Engine) -> None:
    now = engine.clock.now()
    bid = await engine.queue.enqueue(broadcast(30_000), now, 86400)
    counts = await engine.queue.broadcast_counts([bid])
    assert counts[0].recipient_count == 30_000
    assert counts[0].by_state[State.QUEUED] == 30_000


async def test_duplicate_recipients_are_sent_once(engine: Engine) -> None:
    twice = ["a@example.jp", "a@example.jp", "b@example.jp"]
    b = NewBroadcast("s@example.jp", "件名", "本文", twice)
    bid = await engine.queue.enqueue(b, engine.clock.now(), 3600)
    assert len(await engine.queue.deliveries_of(bid)) == 2


async def test_broadcast_without_recipients_is_refused(engine: Engine) -> None:
    with pytest.raises(QueueError):
        await engine.queue.enqueue(
            NewBroadcast("s@example.jp", "件名", "本文", []), engine.clock.now(), 3600
        )
    assert await engine.queue.state_counts() == {s: 0 for s in State}


async def test_claim_takes_emergency_before_normal_before_bulk(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(broadcast(5, Priority.BULK, "bulk"), now, 3600)
    await engine.queue.enqueue(broadcast(5, Priority.NORMAL, "normal"), now, 3600)
    await engine.queue.enqueue(broadcast(5, Priority.EMERGENCY, "emergency"), now, 3600)
    claimed = await engine.queue.claim("r1", 7, now + timedelta(seconds=1), 60)
    prefixes = [d.recipient.partition("@")[0].rstrip("0123456789") for d in claimed]
    assert prefixes == ["emergency"] * 5 + ["normal"] * 2


async def test_send_at_in_the_future_is_not_claimed_early(engine: Engine) -> None:
    now = engine.clock.now()
    b = broadcast(3)
    later = NewBroadcast(**{**b.__dict__, "send_at": now + timedelta(minutes=10)})
    await engine.queue.enqueue(later, now, 3600)
    assert await engine.queue.claim("r1", 10, now, 60) == []
    assert len(await engine.queue.claim("r1", 10, now + timedelta(minutes=11), 60)) == 3


async def test_concurrent_claims_never_share_a_delivery(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(broadcast(1000), now, 3600)
    results = await asyncio.gather(
        *(engine.queue.claim(f"r{i}", 150, now, 60) for i in range(8))
    )
    ids = [d.id for batch in results for d in batch]
    assert len(ids) == len(set(ids)) == 1000


async def test_expired_lease_is_claimed_again(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(broadcast(3), now, 3600)
    first = await engine.queue.claim("dead-runner", 10, now, 30)
    assert len(first) == 3
    assert await engine.queue.claim("r2", 10, now + timedelta(seconds=29), 30) == []
    again = await engine.queue.claim("r2", 10, now + timedelta(seconds=31), 30)
    assert sorted(d.id for d in again) == sorted(d.id for d in first)


async def test_outcome_of_a_lost_lease_is_not_written(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(broadcast(1), now, 3600)
    [d] = await engine.queue.claim("slow-runner", 1, now, 30)
    later = now + timedelta(seconds=31)
    [d2] = await engine.queue.claim("r2", 1, later, 30)
    ok = AttemptResult(d2.id, Outcome.DELIVERED, later, 250, "2.0.0", "ok")
    assert await engine.queue.record("r2", [ok]) == 1
    stale = AttemptResult(d.id, Outcome.FAILED, later, 550, "5.1.1", "unknown")
    assert await engine.queue.record("slow-runner", [stale]) == 0
    [row] = await engine.queue.deliveries_of(d.broadcast_id)
    assert row["state"] == "delivered" and row["attempts"] == 1


async def test_outcomes_are_recorded_with_reply_and_attempt_log(engine: Engine) -> None:
    now = engine.clock.now()
    bid = await engine.queue.enqueue(broadcast(2), now, 3600)
    a, b = await engine.queue.claim("r1", 2, now, 60)
    retry_at = now + timedelta(minutes=3)
    await engine.queue.record(
        "r1",
        [
            AttemptResult(a.id, Outcome.DEFERRED, now, 451, "4.3.0", "try later",
                          "mx:25", next_attempt_at=retry_at),
            AttemptResult(b.id, Outcome.FAILED, now, 550, "5.1.1", "User unknown", "mx:25"),
        ],
    )
    rows = {r["id"]: r for r in await engine.queue.deliveries_of(bid)}
    assert rows[a.id]["state"] == "deferred" and rows[a.id]["last_code"] == 451
    assert rows[b.id]["state"] == "failed" and rows[b.id]["last_status"] == "5.1.1"
    assert rows[b.id]["finished_at"] is not None
    log = await engine.pool.fetch("SELECT delivery_id, outcome FROM delivery_attempts")
    assert sorted((r["delivery_id"], r["outcome"]) for r in log) == [
        (a.id, "deferred"), (b.id, "failed")
    ]
    assert await engine.queue.claim("r1", 10, now + timedelta(minutes=1), 60) == []
    assert [d.id for d in await engine.queue.claim("r1", 10, retry_at, 60)] == [a.id]


async def test_released_deliveries_are_due_at_once(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(broadcast(4), now, 3600)
    claimed = await engine.queue.claim("r1", 4, now, 300)
    await engine.queue.release("r1", [d.id for d in claimed], now)
    assert (await engine.queue.state_counts())[State.QUEUED] == 4
    assert len(await engine.queue.claim("r2", 10, now, 300)) == 4


async def test_unknown_broadcast_is_reported(engine: Engine) -> None:
    with pytest.raises(QueueError, match="no broadcast 999"):
        await engine.queue.deliveries_of(999)


async def test_migrations_are_recorded_and_not_applied_twice(engine: Engine) -> None:
    from engine.platform.db import load_migrations, migrate

    assert await migrate(engine.pool) == []
    versions = await engine.pool.fetch("SELECT version FROM mamoru_migrations")
    expected = [m.version for m in load_migrations()]
    assert expected[:2] == [1, 2]
    assert sorted(r["version"] for r in versions) == expected
