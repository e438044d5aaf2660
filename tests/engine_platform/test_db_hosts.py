"""A [database] url naming two hosts (a primary and its replica, docs/operation.md section 17):
each host gets its own connect timeout, so a first host that went silent (powered off, cut
off: no refusal, no answer) does not keep mamoru from the second one after a failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from dbproxy import DatabaseProxy

from engine.platform.config import Duration, load_settings
from engine.platform.db import connect, create_pool, host_dsns
from engine.platform.outage import UNREACHABLE_ERRORS


def test_a_two_host_url_is_one_url_per_host_with_everything_else_kept() -> None:
    url = ("postgresql://mamoru:pw@db1:5432,db2:5433/mamoru"
           "?target_session_attrs=read-write&sslmode=disable")
    assert host_dsns(url) == [
        "postgresql://mamoru:pw@db1:5432/mamoru?target_session_attrs=read-write&sslmode=disable",
        "postgresql://mamoru:pw@db2:5433/mamoru?target_session_attrs=read-write&sslmode=disable",
    ]
    assert host_dsns("postgresql://db1,db2/m") == ["postgresql://db1/m", "postgresql://db2/m"]
    one = "postgresql://postgres:@/postgres?host=/tmp/x"
    assert host_dsns(one) == [one]


@pytest.fixture
async def silent_host() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never says anything (a hung or cut-off host
    looks like this to a client: no refusal, only silence)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for w in held:
            w.transport.abort()


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[DatabaseProxy]:
    p = DatabaseProxy(db_url)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def two_hosts(proxy: DatabaseProxy, silent: int) -> str:
    """The proxy's URL with the silent host named first."""
    url = proxy.url.replace("127.0.0.1:", f"127.0.0.1:{silent},127.0.0.1:", 1)
    return url + ("&" if "?" in url else "?") + "target_session_attrs=read-write"


async def test_a_silent_first_host_is_passed_over_within_its_own_timeout(
    proxy: DatabaseProxy, silent_host: int
) -> None:
    url = two_hosts(proxy, silent_host)
    started = time.monotonic()
    conn = await asyncio.wait_for(connect(url, timeout=1.0), timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    # One timeout for the silent host, then the second host at once.
    assert time.monotonic() - started < 5


async def test_the_pool_reconnects_past_a_silent_first_host(
    proxy: DatabaseProxy, silent_host: int
) -> None:
    """As after a failover: the old primary (first in the URL) is silent, the promoted one
    answers; the pool is opened and, after the promoted one went away and came back (its
    connections dropped), it reconnects to it."""
    base = load_settings(None, environ={})
    settings = replace(base.database, url=two_hosts(proxy, silent_host), pool_min=1,
                       pool_max=2, connect_timeout=Duration(1.0))
    pool = await asyncio.wait_for(create_pool(settings), timeout=30)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await proxy.stop()
        with pytest.raises(UNREACHABLE_ERRORS):
            await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=10)
        await proxy.start()
        await pool.expire_connections()
        assert await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=10) == 1
    finally:
        await asyncio.wait_for(pool.close(), timeout=10)
