"""Retention: finished broadcasts past [queue] keep leave with all their rows; live never."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from commands import config_file, run_mamoru

from engine.delivery.context import Engine
from engine.platform.config import ConfigError, load_settings
from engine.queue import NewBroadcast
from engine.queue.retention import RetentionKeeper, prune, prune_preview

KEEP = 396 * 86400.0


def broadcast(n: int, prefix: str) -> NewBroadcast:
    return NewBroadcast(
        sender="school@example.jp",
        subject="学校だより",
        body="本文\n",
        recipients=[f"{prefix}{i}@example.jp" for i in range(n)],
    )


async def finished(engine: Engine, n: int, prefix: str, at: datetime) -> int:
    """A broadcast of n deliveries, all delivered at ``at``, with an attempt, a read and a
    kept bounce mail each."""
    now = engine.clock.now()
    bid = await engine.queue.enqueue(broadcast(n, prefix), now, 3600)
    pool = engine.pool
    await pool.execute(
        "UPDATE broadcasts SET send_at = $2, created_at = $2 WHERE id = $1", bid, at)
    await pool.execute(
        "UPDATE deliveries SET state = 'delivered', finished_at = $2, updated_at = $2, "
        "created_at = $2, next_attempt_at = $2 WHERE broadcast_id = $1", bid, at)
    await pool.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, code) "
        "SELECT id, $2, 'delivered', 250 FROM deliveries WHERE broadcast_id = $1", bid, at)
    await pool.execute(
        "INSERT INTO read_requests (broadcast_id, remind_after, max_reminders, created_at) "
        "VALUES ($1, interval '1 hour', 1, $2)", bid, at)
    await pool.execute(
        "INSERT INTO delivery_reads (delivery_id, broadcast_id, read_at) "
        "SELECT id, broadcast_id, $2 FROM deliveries WHERE broadcast_id = $1", bid, at)
    await pool.execute(
        "INSERT INTO bounces (delivery_id, received_at, mail_from, rcpt, kind, classified, raw) "
        "SELECT id, $2, '', '', 'dsn', false, '' FROM deliveries WHERE broadcast_id = $1", bid, at)
    return bid


async def counts(engine: Engine, bid: int) -> dict[str, int]:
    q = {
        "broadcasts": "SELECT count(*) FROM broadcasts WHERE id = $1",
        "deliveries": "SELECT count(*) FROM deliveries WHERE broadcast_id = $1",
        "attempts": "SELECT count(*) FROM delivery_attempts a JOIN deliveries d "
                    "ON d.id = a.delivery_id WHERE d.broadcast_id = $1",
        "reads": "SELECT count(*) FROM delivery_reads WHERE broadcast_id = $1",
        "read_requests": "SELECT count(*) FROM read_requests WHERE broadcast_id = $1",
    }
    return {k: int(await engine.pool.fetchval(sql, bid)) for k, sql in q.items()}


async def total(engine: Engine, table: str) -> int:
    return int(await engine.pool.fetchval(f"SELECT count(*) FROM {table}"))  # names from here


async def test_finished_broadcasts_past_keep_leave_with_everything_hanging_off_them(
    engine: Engine,
) -> None:
    now = engine.clock.now()
    old = await finished(engine, 7, "old", now - timedelta(days=400))
    recent = await finished(engine, 5, "new", now - timedelta(days=300))
    preview = await prune_preview(engine.pool, now, KEEP)
    assert (preview.broadcasts, preview.deliveries) == (1, 7)
    assert (await counts(engine, old))["deliveries"] == 7  # the preview removed nothing

    # A batch of 3: the 7 deliveries leave in three statements.
    done = await prune(engine.pool, now, KEEP, batch=3)

    assert (done.broadcasts, done.deliveries, done.attempts) == (1, 7, 7)
    assert await counts(engine, old) == dict.fromkeys(
        ("broadcasts", "deliveries", "attempts", "reads", "read_requests"), 0)
    assert await counts(engine, recent) == {
        "broadcasts": 1, "deliveries": 5, "attempts": 5, "reads": 5, "read_requests": 1}
    assert await total(engine, "delivery_attempts") == 5
    # Kept bounce mails stay (no key on purpose, migration 003): the error report shows them.
    assert await total(engine, "bounces") == 12
    again = await prune(engine.pool, now, KEEP)
    assert (again.broadcasts, again.deliveries) == (0, 0)


async def test_a_broadcast_with_a_live_delivery_loses_no_row(engine: Engine) -> None:
    now = engine.clock.now()
    long_ago = now - timedelta(days=500)
    bid = await finished(engine, 6, "live", long_ago)
    # One delivery is still waiting for a retry (however it came to be): the broadcast is in
    # progress, so none of its rows may leave, not even the finished ones.
    await engine.pool.execute(
        "UPDATE deliveries SET state = 'deferred', finished_at = NULL WHERE id = "
        "(SELECT min(id) FROM deliveries WHERE broadcast_id = $1)", bid)
    before = await counts(engine, bid)

    done = await prune(engine.pool, now, KEEP, batch=2)

    assert done.deliveries == 0
    assert await counts(engine, bid) == before


async def test_a_late_change_keeps_the_broadcast_until_it_too_is_past_keep(
    engine: Engine,
) -> None:
    now = engine.clock.now()
    bid = await finished(engine, 3, "late", now - timedelta(days=420))
    # A bounce that arrived later changed one delivery 100 days ago.
    await engine.pool.execute(
        "UPDATE deliveries SET state = 'failed', updated_at = $2 WHERE id = "
        "(SELECT min(id) FROM deliveries WHERE broadcast_id = $1)",
        bid, now - timedelta(days=100))

    assert (await prune(engine.pool, now, KEEP)).deliveries == 0
    assert (await prune(engine.pool, now + timedelta(days=300), KEEP)).deliveries == 3


async def test_a_scheduled_broadcast_never_leaves(engine: Engine) -> None:
    now = engine.clock.now()
    bid = await finished(engine, 2, "sched", now - timedelta(days=500))
    await engine.pool.execute(
        "UPDATE broadcasts SET send_at = $2 WHERE id = $1", bid, now + timedelta(days=1))
    assert (await prune(engine.pool, now, KEEP)).broadcasts == 0
    assert (await counts(engine, bid))["deliveries"] == 2


async def test_keeper_prunes_once_at_start(engine: Engine) -> None:
    now = engine.clock.now()
    await finished(engine, 4, "keeper", now - timedelta(days=400))
    keeper = RetentionKeeper(engine.pool, engine.clock, KEEP)
    done = await keeper.prune_once()
    assert done is not None and done.deliveries == 4
    assert await total(engine, "deliveries") == 0


def test_keep_defaults_to_13_months_and_refuses_less_than_a_month() -> None:
    assert load_settings(None, environ={}).queue.keep == 396 * 86400
    assert load_settings(None, environ={"MAMORU_QUEUE_KEEP": "60d"}).queue.keep == 60 * 86400
    with pytest.raises(ConfigError, match="queue.keep"):
        load_settings(None, environ={"MAMORU_QUEUE_KEEP": "7d"})


async def test_queue_prune_is_a_command_with_a_dry_run_and_is_audited(
    engine: Engine, tmp_path: Path
) -> None:
    now = engine.clock.now()
    await finished(engine, 3, "cli", now - timedelta(days=400))
    cfg = config_file(tmp_path, engine.settings.database.url, "127.0.0.1:9")

    code, out, err = await run_mamoru("queue", "prune", "--dry-run", "--config", cfg)
    assert code == 0, err
    assert "配信 1 件 (宛先 3 件) を削除できます" in out
    assert await total(engine, "deliveries") == 3

    code, out, err = await run_mamoru("queue", "prune", "--config", cfg)
    assert code == 0, err
    assert "配信 1 件 (宛先 3 件) を削除しました" in out
    assert await total(engine, "deliveries") == 0
    assert await engine.pool.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'queue.prune'") == (
        "broadcasts=1 deliveries=3")
