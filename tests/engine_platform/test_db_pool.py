"""The pool hands connections on without asyncpg's reset query (engine/platform/db.py), and that
is safe for what mamoru does on pooled connections: transactions, their locks and ``SET LOCAL``
end with the transaction, even one that failed or was left open."""

from __future__ import annotations

import asyncpg
import pytest

from engine.platform.config import DatabaseSettings
from engine.platform.db import create_pool

LOCK = 0x6D616D70


async def _one_connection_pool(db_url: str) -> asyncpg.Pool:
    return await create_pool(DatabaseSettings(url=db_url, pool_min=1, pool_max=1), db_url)


async def test_a_released_connection_is_not_sent_the_reset_query(db_url: str) -> None:
    pool = await _one_connection_pool(db_url)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'marker'")
        # RESET ALL would have cleared it: the same backend keeps what was set.
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
            assert await conn.fetchval("SHOW application_name") == "marker"
    finally:
        await pool.close()


async def test_a_failed_transaction_leaves_no_lock_or_setting_behind(db_url: str) -> None:
    pool = await _one_connection_pool(db_url)
    try:
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK)
                await conn.execute("SET LOCAL statement_timeout = 1234")
                raise RuntimeError("boom")
        other = await asyncpg.connect(db_url)
        try:
            # The lock went with the transaction: another session takes it at once.
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK)
        finally:
            await other.close()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_before_the_next_user(db_url: str) -> None:
    pool = await _one_connection_pool(db_url)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS pool_probe (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
    finally:
        await pool.close()


async def test_a_failed_statistics_refresh_is_logged_not_raised(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.platform.db import analyze

    pool = await _one_connection_pool(db_url)
    try:
        await analyze(pool, "no_such_table")  # after a committed write: must not raise
    finally:
        await pool.close()
    assert "ANALYZE no_such_table failed" in caplog.text
