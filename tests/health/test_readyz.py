"""/healthz and /readyz: each cause of "not ready" turns it 503 with a Japanese reason, and a
deployment that can deliver is ready."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dbproxy import DatabaseProxy
from support import make_settings

from admin_api.app import create_app
from admin_api.site import open_site
from engine.delivery.context import Engine
from engine.delivery.health import readiness
from engine.delivery.shaping_state import publish
from engine.people import People
from engine.platform.clock import FakeClock
from engine.platform.db import create_pool
from engine.platform.service_status import record_status
from engine.queue.liveness import heartbeat
from engine.throttle import SiteState
from engine.throttle._blocks import BlockState

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _site_state(blocked_since: datetime | None) -> SiteState:
    return SiteState(
        source="127.0.0.2", site="docomo", profile="docomo", rate=5.0, floor=0.5, ceiling=20.0,
        connections_in_use=0, connections_allowed=2, max_connections=4, suspended_until=None,
        suspensions=0, cuts=0, sent=10, delivered=10, deferred=0, throttled=0, refused=0,
        failed=0, waiting=0, warmup_sent_today=0, warmup_limit_today=None,
        blocked_until=NOW + timedelta(minutes=5) if blocked_since else None,
        blocked_since=blocked_since, blocks=1 if blocked_since else 0,
    )


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    settings = make_settings(db_url, http={"listen": ""})
    clock = FakeClock(NOW)
    eng = await Engine.open(settings, clock)
    try:
        people = await People.open(eng.pool, settings.people, clock)
        site = await open_site(settings, people, await eng.verp_secret())
        transport = httpx.ASGITransport(app=create_app(site))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c, eng
    finally:
        await eng.close()


async def test_a_deployment_that_can_deliver_is_ready_and_each_cause_says_why(
    client: tuple[httpx.AsyncClient, Engine],
) -> None:
    c, eng = client
    assert (await c.get("/healthz")).json() == {"status": "ok"}
    # No runner has announced itself: not ready.
    r = await c.get("/readyz")
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
    assert not r.json()["checks"]["runners"]["ok"]
    await heartbeat(eng.pool, "host1-1", NOW)
    r = await c.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"], r.json()
    # A carrier blocking us for five minutes is not yet an alarm; for an hour it is.
    await publish(eng.pool, "host1-1", [_site_state(NOW - timedelta(minutes=5))], NOW)
    assert (await c.get("/readyz")).status_code == 200
    await publish(eng.pool, "host1-1", [_site_state(NOW - timedelta(hours=1))], NOW)
    r = await c.get("/readyz")
    assert r.status_code == 503 and "docomo" in r.json()["checks"]["blocks"]["detail"]
    await publish(eng.pool, "host1-1", [_site_state(None)], NOW)
    assert (await c.get("/readyz")).status_code == 200
    # The audit chain found broken by the daily check, or not checked for days.
    await record_status(eng.pool, "audit", False, NOW, "監査ログの 3 番: 書き換えあり")
    r = await c.get("/readyz")
    assert r.status_code == 503 and "3 番" in r.json()["checks"]["audit"]["detail"]
    await record_status(eng.pool, "audit", True, NOW - timedelta(days=3))
    assert (await c.get("/readyz")).status_code == 503
    await record_status(eng.pool, "audit", True, NOW)
    assert (await c.get("/readyz")).status_code == 200


async def test_backups_count_only_where_serve_makes_them(engine: Engine) -> None:
    await heartbeat(engine.pool, "host1-1", NOW)
    assert (await readiness(engine.pool, NOW)).ok
    assert not (await readiness(engine.pool, NOW, backup_expected=True)).ok
    await record_status(engine.pool, "backup", True, NOW - timedelta(hours=3))
    assert (await readiness(engine.pool, NOW, backup_expected=True)).ok
    await record_status(engine.pool, "backup", True, NOW - timedelta(hours=30))
    found = await readiness(engine.pool, NOW, backup_expected=True)
    assert not found.ok and "バックアップ" in found.checks["backup"].detail


async def test_a_database_that_does_not_answer_is_not_ready(db_url: str) -> None:
    proxy = DatabaseProxy(db_url)
    await proxy.start()
    settings = make_settings(proxy.url)
    pool = await create_pool(replace(settings.database, url=proxy.url), proxy.url)
    try:
        await heartbeat(pool, "host1-1", NOW)
        assert (await readiness(pool, NOW)).ok
        await proxy.stop()
        found = await readiness(pool, NOW)
        assert not found.ok and "データベース" in found.checks["database"].detail
    finally:
        await proxy.stop()
        pool.terminate()


def test_a_block_remembers_when_its_run_began_across_failed_probes() -> None:
    block = BlockState()
    assert block.block(100.0, "554 blocked")
    block.start_probe()
    assert block.block(400.0, "554 still blocked")  # the probe failed: blocked again
    assert block.seconds_blocked(500.0) == 400.0
    block.resume()
    assert block.seconds_blocked(600.0) == 0.0
    block.block(700.0, "554 blocked")
    assert block.seconds_blocked(760.0) == 60.0
