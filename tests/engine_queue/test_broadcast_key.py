"""deliveries.broadcast_id, checked once per statement (migration 038) instead of per row by a
foreign key: no delivery of a missing broadcast, by INSERT or COPY; no broadcast deleted, or
its id changed, while it has deliveries; and under concurrency the same as the foreign key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import pytest
from support import wait_until

from engine.delivery.context import Engine
from engine.queue import NewBroadcast

INSERT_SQL = (
    "INSERT INTO deliveries (broadcast_id, recipient_hash, domain, priority, next_attempt_at, "
    "expires_at) VALUES ($1, $2, 'example.jp', 1, now(), now() + interval '1 day')"
)
COPY_COLUMNS = ["broadcast_id", "recipient_hash", "domain", "priority", "next_attempt_at",
                "expires_at"]
NEW_BROADCAST_SQL = (
    "INSERT INTO broadcasts (sender, subject, body, priority, send_at, recipient_count) "
    "VALUES ('s@example.jp', '件名', '本文', 1, now(), 0) RETURNING id"
)


def rows(broadcast_ids: list[int], now: datetime) -> list[tuple[object, ...]]:
    return [(b, f"h{i}".encode(), "example.jp", 1, now, now)
            for i, b in enumerate(broadcast_ids)]


async def sent(engine: Engine, n: int = 3) -> int:
    return await engine.queue.enqueue(
        NewBroadcast("school@example.jp", "お知らせ", "本文\n",
                     [f"k{i}@example.jp" for i in range(n)]),
        engine.clock.now(), 3600,
    )


async def total(engine: Engine) -> int:
    return int(await engine.pool.fetchval("SELECT count(*) FROM deliveries"))


@pytest.fixture
async def conns(engine: Engine) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    """Two connections of their own, for the concurrent cases."""
    a, b = await engine.pool.acquire(), await engine.pool.acquire()
    try:
        yield a, b
    finally:
        await engine.pool.release(a)
        await engine.pool.release(b)


async def waiting_for_lock(engine: Engine, conn: asyncpg.Connection) -> None:
    """Until ``conn``'s statement waits for a lock (fails after 20 s)."""
    pid = conn.get_server_pid()
    await wait_until(lambda: engine.pool.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
    ), timeout=20)


async def test_insert_of_a_missing_broadcast_is_refused(engine: Engine) -> None:
    bid = await sent(engine)
    before = await total(engine)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="deliveries_broadcast_exists"):
        await engine.pool.execute(INSERT_SQL, bid + 1000, b"x")
    assert await total(engine) == before
    await engine.pool.execute(INSERT_SQL, bid, b"x")  # an existing one is fine
    assert await total(engine) == before + 1


async def test_copy_with_one_missing_broadcast_is_refused_whole(engine: Engine) -> None:
    bid = await sent(engine)
    before = await total(engine)
    now = engine.clock.now()
    async with engine.pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
            await conn.copy_records_to_table(
                "deliveries", columns=COPY_COLUMNS, records=rows([bid, bid, bid + 7, bid], now))
        assert f"(broadcast_id)=({bid + 7})" in str(refused.value.detail)
        assert await total(engine) == before
        await conn.copy_records_to_table(
            "deliveries", columns=COPY_COLUMNS, records=rows([bid] * 5, now))
    assert await total(engine) == before + 5


async def test_a_failed_check_rolls_the_whole_fan_out_back(engine: Engine) -> None:
    """The broadcast row stored earlier in the transaction goes with the refused COPY."""
    broadcasts = await engine.pool.fetchval("SELECT count(*) FROM broadcasts")
    async with engine.pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with conn.transaction():
                bid = await conn.fetchval(NEW_BROADCAST_SQL)
                await conn.copy_records_to_table(
                    "deliveries", columns=COPY_COLUMNS,
                    records=rows([bid] * 100 + [bid + 1], engine.clock.now()))
    assert await engine.pool.fetchval("SELECT count(*) FROM broadcasts") == broadcasts
    assert await total(engine) == 0


async def test_a_delivery_never_moves_to_another_broadcast(engine: Engine) -> None:
    first, second = await sent(engine), await sent(engine)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="never changes"):
        await engine.pool.execute(
            "UPDATE deliveries SET broadcast_id = $2 WHERE broadcast_id = $1", first, second)
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", first) == 3
    # Naming the column with its own value, or not at all, is fine.
    await engine.pool.execute(
        "UPDATE deliveries SET broadcast_id = broadcast_id, attempts = 1 WHERE broadcast_id = $1",
        first)
    assert await engine.pool.fetchval(
        "SELECT sum(attempts) FROM deliveries WHERE broadcast_id = $1", first) == 3


async def test_deleting_a_broadcast_with_deliveries_is_refused(engine: Engine) -> None:
    kept, empty = await sent(engine), int(await engine.pool.fetchval(NEW_BROADCAST_SQL))
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="broadcasts_keep_deliveries"):
        await engine.pool.execute(
            "DELETE FROM broadcasts WHERE id = ANY($1::bigint[])", [empty, kept])
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM broadcasts WHERE id = ANY($1::bigint[])", [empty, kept]) == 2
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="broadcasts_id_kept"):
        await engine.pool.execute(
            "UPDATE broadcasts SET id = DEFAULT WHERE id = $1", kept)
    # Without deliveries (retention and disposal delete them first) it goes.
    assert await engine.pool.execute("DELETE FROM broadcasts WHERE id = $1", empty) == "DELETE 1"
    await engine.pool.execute("DELETE FROM deliveries WHERE broadcast_id = $1", kept)
    assert await engine.pool.execute("DELETE FROM broadcasts WHERE id = $1", kept) == "DELETE 1"


async def test_delete_waiting_for_an_insert_sees_its_deliveries(
    engine: Engine, conns: tuple[asyncpg.Connection, asyncpg.Connection]
) -> None:
    """As with the foreign key: the insert's KEY SHARE lock holds the delete until the insert
    commits, and the delete then finds the new deliveries and is refused."""
    inserting, deleting = conns
    bid = int(await engine.pool.fetchval(NEW_BROADCAST_SQL))
    async with asyncio.timeout(30):
        tx = inserting.transaction()
        await tx.start()
        await inserting.execute(INSERT_SQL, bid, b"x")
        delete = asyncio.create_task(
            deleting.execute("DELETE FROM broadcasts WHERE id = $1", bid))
        await waiting_for_lock(engine, deleting)
        await tx.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await delete
    assert await engine.pool.fetchval("SELECT count(*) FROM broadcasts WHERE id = $1", bid) == 1
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", bid) == 1


async def test_insert_waiting_for_a_delete_finds_the_broadcast_gone(
    engine: Engine, conns: tuple[asyncpg.Connection, asyncpg.Connection]
) -> None:
    inserting, deleting = conns
    bid = int(await engine.pool.fetchval(NEW_BROADCAST_SQL))
    async with asyncio.timeout(30):
        tx = deleting.transaction()
        await tx.start()
        assert await deleting.execute("DELETE FROM broadcasts WHERE id = $1", bid) == "DELETE 1"
        insert = asyncio.create_task(inserting.execute(INSERT_SQL, bid, b"x"))
        await waiting_for_lock(engine, inserting)
        await tx.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="deliveries_broadcast_exists"):
            await insert
    assert await total(engine) == 0
