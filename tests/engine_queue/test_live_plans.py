"""The queue's hot statements keep their plans after ANALYZE saw only finished rows (issue 25):
the runners refresh the statistics when the live rows are misjudged
(``liveness.refresh_live_estimate``), so the claim walks deliveries_due in order and the
outcome writer finds its rows by id whatever the statistics say; "is there work" looks at live
rows only, not at history."""

from __future__ import annotations

import json
from typing import Any

from engine.delivery.context import Engine
from engine.queue import NewBroadcast, Priority
from engine.queue.liveness import HAS_WORK_SQL, refresh_live_estimate
from engine.queue.store import CLAIM_SQL, NOTE_SQL, RECORD_SQL

LIVE_ONLY = ("deliveries_due", "deliveries_expiry", "deliveries_live_by_broadcast")


def _broadcast(n: int, prefix: str) -> NewBroadcast:
    return NewBroadcast("s@example.jp", "お知らせ", "本文\n",
                        [f"{prefix}{i}@example.jp" for i in range(n)], Priority.NORMAL)


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index or '') of every scan of deliveries in the plan."""
    found = []
    if plan.get("Relation Name") == "deliveries":
        found.append((plan["Node Type"], plan.get("Index Name", "")))
    for child in plan.get("Plans", []):
        found.extend(_scans(child))
    return found


async def _plan(engine: Engine, sql: str, *args: Any) -> list[tuple[str, str]]:
    async with engine.queue.pool.acquire() as conn:
        text = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    return _scans(json.loads(text)[0]["Plan"])


async def _history_then_live(engine: Engine) -> None:
    """A finished broadcast ANALYZEd as such, then a live one the statistics have not seen."""
    now = engine.clock.now()
    await engine.queue.enqueue(_broadcast(6000, "old"), now, 3600)
    await engine.queue.pool.execute(
        "UPDATE deliveries SET state = 'delivered', finished_at = $1", now)
    await engine.queue.pool.execute("VACUUM ANALYZE deliveries")
    await engine.queue.enqueue(_broadcast(3000, "new"), now, 3600)


async def _claim_scans(engine: Engine) -> list[tuple[str, str]]:
    now = engine.clock.now()
    return await _plan(engine, CLAIM_SQL, now, 200, 60.0, "r1", [], [], "cancelled")


async def test_claim_walks_the_due_index_once_live_rows_are_known(engine: Engine) -> None:
    await _history_then_live(engine)
    # What ANALYZE saw (no live row) misleads the planner: a live-only index and a sort of
    # every live row for each batch; the refresh puts it right, once.
    assert ("Index Scan", "deliveries_due") not in await _claim_scans(engine)
    assert await refresh_live_estimate(engine.queue.pool) is True
    scans = await _claim_scans(engine)
    assert ("Index Scan", "deliveries_due") in scans
    assert not any(i in ("deliveries_live_by_broadcast", "deliveries_expiry") for _, i in scans)
    assert await refresh_live_estimate(engine.queue.pool) is False
    assert len(await engine.queue.claim("r1", 200, engine.clock.now(), 60)) == 200


async def test_few_live_rows_are_left_to_autoanalyze(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(_broadcast(400, "few"), now, 3600)
    assert await refresh_live_estimate(engine.queue.pool) is False


async def test_leased_rows_the_statistics_missed_are_refreshed_too(engine: Engine) -> None:
    await _history_then_live(engine)
    now = engine.clock.now()
    assert await refresh_live_estimate(engine.queue.pool) is True
    # Now the queued rows are known; rows leased since are not (the outcome writer looks
    # for them by state 'sending').
    assert len(await engine.queue.claim("r1", 800, now, 60)) == 800
    assert await refresh_live_estimate(engine.queue.pool) is True
    assert await refresh_live_estimate(engine.queue.pool) is False


async def test_has_work_reads_live_rows_only(engine: Engine) -> None:
    now = engine.clock.now()
    await engine.queue.enqueue(_broadcast(30_000, "old"), now, 3600)
    await engine.queue.pool.execute(
        "UPDATE deliveries SET state = 'delivered', finished_at = $1", now)
    await engine.queue.enqueue(_broadcast(600, "new"), now, 3600)
    await engine.queue.pool.execute("VACUUM ANALYZE deliveries")
    # The live rows are the table's last: a scan expecting one soon reads all of history.
    scans = await _plan(engine, HAS_WORK_SQL, now)
    assert scans and not any(t == "Seq Scan" for t, _ in scans), scans
    assert await engine.queue.pool.fetchval(HAS_WORK_SQL, now) is True


async def test_outcomes_are_written_by_id_whatever_the_statistics_say(engine: Engine) -> None:
    """The statistics say nothing is leased (ANALYZE ran before the claim): the outcome
    writer never looks for its 200 rows through a live-only index (which means reading every
    live row of every broadcast): by primary key, or on a table this small a plain scan."""
    await _history_then_live(engine)
    assert await refresh_live_estimate(engine.queue.pool) is True
    now = engine.clock.now()
    ids = [c.id for c in await engine.queue.claim("r1", 200, now, 60)]
    assert len(ids) == 200
    n = len(ids)
    record = (ids, ["delivered"] * n, [1] * n, [250] * n, ["2.0.0"] * n, ["ok"] * n,
              [None] * n, [None] * n, [now] * n, ["mx.example.jp"] * n, "r1", [None] * n,
              [True] * n)
    note = (ids, [421] * n, ["4.7.0"] * n, ["slow down"] * n, [None] * n, [None] * n,
            [now] * n, ["mx.example.jp"] * n, "r1")
    for sql, args in ((RECORD_SQL, record), (NOTE_SQL, note)):
        scans = await _plan(engine, sql, *args)
        assert not any(i in LIVE_ONLY for _, i in scans), scans
    assert await engine.queue.pool.fetchval(RECORD_SQL, *record) == 200
    assert await engine.queue.pool.fetchval(
        "SELECT count(*) FROM delivery_attempts WHERE delivery_id = ANY($1)", ids) == 200
