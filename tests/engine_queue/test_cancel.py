"""Scheduled broadcasts in the queue: the past send-time rule, listing and cancelling."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from support import wait_until

from engine.delivery.context import Engine
from engine.platform.errors import InputError
from engine.queue import (
    CANCEL_CHANNEL,
    AttemptResult,
    BroadcastState,
    NewBroadcast,
    Outcome,
    State,
)
from engine.queue.broadcasts import CANCELLED_TEXT


def broadcast(n: int, prefix: str = "g", **kw: object) -> NewBroadcast:
    return NewBroadcast(
        sender="school@example.jp",
        subject="遠足のお知らせ",
        body="明日の遠足は雨天決行です。\n",
        recipients=[f"{prefix}{i}@example.jp" for i in range(n)],
        **kw,  # type: ignore[arg-type]
    )


async def rows(db: Engine, bid: int) -> dict[str, dict[str, object]]:
    return {r["recipient"]: r for r in await db.queue.deliveries_of(bid)}


async def test_send_at_in_the_past_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    now = engine.clock.now()
    wrong_year = broadcast(3, send_at=now - timedelta(days=365))
    with pytest.raises(InputError, match="過去"):
        await engine.queue.enqueue(wrong_year, now, 3600)
    assert await engine.queue.broadcast_counts() == []


async def test_send_at_a_few_seconds_ago_is_accepted(engine: Engine) -> None:
    now = engine.clock.now()
    bid = await engine.queue.enqueue(broadcast(2, send_at=now - timedelta(seconds=30)), now, 60)
    assert len(await engine.queue.deliveries_of(bid)) == 2


async def test_cancel_stops_every_unsent_delivery_and_leaves_live_leases(engine: Engine) -> None:
    q = engine.queue
    now = engine.clock.now()
    bid = await q.enqueue(broadcast(6), now, 3600)
    # g0 delivered, g1 deferred, g2 held by a live runner, g3 by a runner that died.
    first = await q.claim("live", 3, now, 600)
    assert [d.recipient for d in first] == ["g0@example.jp", "g1@example.jp", "g2@example.jp"]
    await q.record("live", [
        AttemptResult(first[0].id, Outcome.DELIVERED, now, 250, "2.0.0", "ok"),
        AttemptResult(first[1].id, Outcome.DEFERRED, now, 451, "4.3.0", "later",
                      next_attempt_at=now + timedelta(minutes=3)),
    ])
    [dead] = await q.claim("dead", 1, now, 1)
    assert dead.recipient == "g3@example.jp"

    conn = await asyncpg.connect(engine.dsn)
    heard: list[str] = []
    await conn.add_listener(CANCEL_CHANNEL, lambda *args: heard.append(args[-1]))
    try:
        result = await q.cancel(bid, now + timedelta(seconds=5))
        await wait_until(lambda: heard == [str(bid)], timeout=5)
    finally:
        await conn.close()

    assert (result.cancelled, result.in_flight, result.delivered, result.failed) == (4, 1, 1, 0)
    by = await rows(engine, bid)
    assert by["g0@example.jp"]["state"] == State.DELIVERED
    assert by["g2@example.jp"]["state"] == State.SENDING
    for name in ("g1", "g3", "g4", "g5"):
        r = by[f"{name}@example.jp"]
        assert (r["state"], r["reason"], r["last_text"]) == ("failed", "cancelled", CANCELLED_TEXT)
        assert r["finished_at"] is not None
    assert await q.cancelled_among([bid, bid + 1]) == {bid}


async def test_rows_given_back_or_found_later_of_a_cancelled_broadcast_are_never_claimed(
    engine: Engine,
) -> None:
    q = engine.queue
    now = engine.clock.now()
    bid = await q.enqueue(broadcast(2), now, 3600)
    held = await q.claim("r1", 2, now, 60)
    await q.cancel(bid, now)
    # r1 gives one back; the other one's lease runs out (r1 died).
    await q.release("r1", [held[0].id], now)
    later = now + timedelta(minutes=2)
    assert await q.claim("r2", 10, later, 60) == []
    by = await rows(engine, bid)
    assert {r["state"] for r in by.values()} == {"failed"}
    assert {r["reason"] for r in by.values()} == {"cancelled"}
    assert not await q.has_due(later)


async def test_cancelling_unknown_finished_or_cancelled_broadcasts_is_refused(
    engine: Engine,
) -> None:
    q = engine.queue
    now = engine.clock.now()
    with pytest.raises(InputError, match="no broadcast 99"):
        await q.cancel(99, now)
    bid = await q.enqueue(broadcast(1), now, 3600)
    [d] = await q.claim("r", 1, now, 60)
    await q.record("r", [AttemptResult(d.id, Outcome.DELIVERED, now, 250, "2.0.0", "ok")])
    with pytest.raises(InputError, match="finished"):
        await q.cancel(bid, now)
    other = await q.enqueue(broadcast(1, prefix="h"), now, 3600)
    await q.cancel(other, now)
    with pytest.raises(InputError, match="already cancelled"):
        await q.cancel(other, now)
    [summary] = [b for b in await q.list_broadcasts(now) if b.id == bid]
    assert summary.cancelled_at is None and summary.state == BroadcastState.FINISHED


async def test_broadcasts_are_listed_newest_first_with_their_state(engine: Engine) -> None:
    q = engine.queue
    now = engine.clock.now()
    going = await q.enqueue(broadcast(2), now, 3600)
    scheduled = await q.enqueue(broadcast(3, send_at=now + timedelta(hours=12)), now, 3600)
    dropped = await q.enqueue(broadcast(1, send_at=now + timedelta(hours=1)), now, 3600)
    await q.cancel(dropped, now)
    listed = await q.list_broadcasts(now)
    assert [(b.id, b.state) for b in listed] == [
        (dropped, BroadcastState.CANCELLED),
        (scheduled, BroadcastState.SCHEDULED),
        (going, BroadcastState.SENDING),
    ]
    assert listed[1].by_state[State.QUEUED] == 3 and listed[1].recipient_count == 3
    assert [b.id for b in await q.list_broadcasts(now, scheduled_only=True)] == [scheduled]
    assert [b.id for b in await q.list_broadcasts(now, latest=1)] == [dropped]
    with pytest.raises(InputError):
        await q.list_broadcasts(now, latest=-1)


async def test_recipients_differing_only_in_case_are_one_delivery(engine: Engine) -> None:
    b = replace(
        broadcast(0), recipients=["Dup@docomo.ne.jp", "dup@docomo.ne.jp", "DUP@docomo.ne.jp"]
    )
    bid = await engine.queue.enqueue(b, engine.clock.now(), 3600)
    assert list(await rows(engine, bid)) == ["Dup@docomo.ne.jp"]


async def test_a_suppression_stops_every_spelling_of_the_address(engine: Engine) -> None:
    from engine.bounce.suppression import Suppressions

    s = Suppressions(engine.pool, engine.queue.sealer)
    await s.add("dup@docomo.ne.jp", "userunknown")
    b = replace(broadcast(0), recipients=["Dup@docomo.ne.jp", "other@docomo.ne.jp"])
    bid = await engine.queue.enqueue(b, engine.clock.now(), 3600)
    by = await rows(engine, bid)
    assert (by["Dup@docomo.ne.jp"]["state"], by["Dup@docomo.ne.jp"]["reason"]) == (
        "failed", "suppressed"
    )
    assert by["other@docomo.ne.jp"]["state"] == "queued"
    [counts] = await engine.queue.broadcast_counts([bid])
    assert counts.suppressed_count == 1


async def test_cancelled_deliveries_are_not_in_the_error_report(engine: Engine) -> None:
    from engine.bounce.report import error_report

    now = engine.clock.now()
    bid = await engine.queue.enqueue(broadcast(3), now, 3600)
    await engine.queue.cancel(bid, now)
    report = await error_report(engine.pool, engine.queue.sealer, bid, None, 3)
    assert report["total"] == 0 and report["categories"] == []
