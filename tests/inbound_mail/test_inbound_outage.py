"""The inbound server while the database is away: 4xx, one log line, and back by itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from dbproxy import DatabaseProxy
from inbound_helpers import delivered_ids, engine_with_inbound, make_dsn, smtp_send, verp_of
from sinks import free_port

from engine.platform.db import create_pool
from engine.platform.outage import REACHABLE, UNREACHABLE
from inbound import InboundServer


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[DatabaseProxy]:
    p = DatabaseProxy(db_url)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_outage_answers_4xx_logs_once_and_recovers(
    db_url: str, proxy: DatabaseProxy, caplog: pytest.LogCaptureFixture
) -> None:
    async with engine_with_inbound(db_url) as (eng, _direct):
        ids = await delivered_ids(eng, ["taro@docomo.ne.jp", "hanako@ezweb.ne.jp"])
        settings = replace(eng.settings, database=replace(eng.settings.database, url=proxy.url))
        settings = replace(
            settings, inbound=replace(settings.inbound, listen=f"127.0.0.1:{free_port()}")
        )
        # The inbound server under test reaches PostgreSQL only through the proxy.
        pool = await create_pool(settings.database, proxy.url)
        server = InboundServer(settings, pool, await eng.verp_secret(), eng.clock)
        try:
            async with server:
                taro = await verp_of(eng, ids["taro@docomo.ne.jp"])
                hanako = await verp_of(eng, ids["hanako@ezweb.ne.jp"])

                await proxy.stop()
                with caplog.at_level(logging.INFO, logger="inbound"):
                    replies = [
                        await smtp_send(server, "", [rcpt], make_dsn(rcpt, who))
                        for rcpt, who in (
                            (taro, "taro@docomo.ne.jp"),
                            (hanako, "hanako@ezweb.ne.jp"),
                            (taro, "taro@docomo.ne.jp"),
                        )
                    ]
                    assert [code for code, _ in replies] == [451, 451, 451]
                    down = [r for r in caplog.records if UNREACHABLE in r.getMessage()]
                    assert len(down) == 1
                    # Nothing else was logged for those mails: each connection error was
                    # recognised as the outage.
                    others = [
                        r for r in caplog.records
                        if r.levelno >= logging.WARNING and UNREACHABLE not in r.getMessage()
                    ]
                    assert others == []
                    assert await eng.pool.fetchval("SELECT count(*) FROM bounces") == 0

                    await proxy.start()
                    code, _ = await smtp_send(
                        server, "", [taro], make_dsn(taro, "taro@docomo.ne.jp")
                    )
                    assert code == 250
                    assert [r for r in caplog.records if REACHABLE in r.getMessage()]
        finally:
            await pool.close()
        state = await eng.pool.fetchval(
            "SELECT state FROM deliveries WHERE id = $1", ids["taro@docomo.ne.jp"]
        )
        assert state == "failed"
        assert await eng.pool.fetchval("SELECT count(*) FROM bounces") == 1
