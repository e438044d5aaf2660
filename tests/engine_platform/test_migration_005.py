"""Migration 005 on a database that already holds suppressions differing only in case."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import scratch_database

from engine.platform.db import load_migrations


@pytest.fixture
async def empty_db(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url, "mamoru_m", template=None) as url:
        yield url


async def test_colliding_suppressions_are_merged_keeping_the_oldest(empty_db: str) -> None:
    migrations = {m.version: m.sql for m in load_migrations()}
    conn = await asyncpg.connect(empty_db)
    try:
        for version in (1, 2, 3, 4):
            await conn.execute(migrations[version])
        await conn.execute(
            """
            INSERT INTO suppressions (address, reason, category, source, created_at) VALUES
              ('Taro@docomo.ne.jp', 'userunknown', 'unknown_user', 'bounce', '2026-01-01Z'),
              ('taro@docomo.ne.jp', 'operator', 'other', 'operator', '2026-02-01Z'),
              ('hanako@au.com', 'operator', 'other', 'operator', '2026-02-01Z');
            INSERT INTO soft_failures (address, delivery_id, reason, category, failed_at) VALUES
              ('Mama@au.com', 1, 'mailboxfull', 'mailbox_full', '2026-01-01Z'),
              ('mama@au.com', 1, 'mailboxfull', 'mailbox_full', '2026-01-01Z'),
              ('MAMA@au.com', 2, 'mailboxfull', 'mailbox_full', '2026-01-02Z');
            """
        )
        await conn.execute(migrations[5])
        kept = await conn.fetch("SELECT address, reason FROM suppressions ORDER BY address")
        soft = await conn.fetch(
            "SELECT address, delivery_id FROM soft_failures ORDER BY delivery_id"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO suppressions (address, reason, category, source) "
                "VALUES ('HANAKO@au.com', 'x', 'other', 'operator')"
            )
    finally:
        await conn.close()
    assert sorted(tuple(r) for r in kept) == [
        ("Taro@docomo.ne.jp", "userunknown"), ("hanako@au.com", "operator")
    ]
    assert [tuple(r) for r in soft] == [("mama@au.com", 1), ("mama@au.com", 2)]
