"""serve's daily audit care: old entries go at start and once a day, the count is logged,
the chain is verified (gauge and log) and checkpointed, and stop ends the task at once."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from support import wait_until

from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.staff import audit
from engine.staff.audit_keeper import AuditKeeper
from engine.staff.models import CLI_PRINCIPAL


async def test_serve_prunes_old_audit_entries_and_logs_the_count(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = b"k" * 32
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for age in (400, 200, 10):
        await audit.record(engine.pool, key, now - timedelta(days=age), CLI_PRINCIPAL, "x.y")
    clock = FakeClock(now)
    pruner = AuditKeeper(engine.pool, clock, key, keep=100 * 86400.0, checkpoints=None,
                         interval=0.05)
    caplog.set_level(logging.INFO, logger="engine.staff.audit_keeper")
    pruner.start()
    try:
        await wait_until(lambda: pruner.runs >= 1, timeout=5)
        assert await engine.pool.fetchval("SELECT count(*) FROM audit_log") == 1
        assert "2 entries" in caplog.text
        # A day later (here: the next turn) the remaining entry has aged too.
        # A turn already under way may have read the clock before the advance: wait for one
        # that started after it.
        runs = pruner.runs
        clock.advance(95 * 86400)
        await wait_until(lambda: pruner.runs > runs + 1, timeout=5)
        assert await engine.pool.fetchval("SELECT count(*) FROM audit_log") == 0
    finally:
        await asyncio.wait_for(pruner.stop(), timeout=2)
    assert (await audit.verify(engine.pool, key)).ok


async def test_stop_ends_the_daily_wait_at_once(engine: Engine) -> None:
    pruner = AuditKeeper(engine.pool, FakeClock(), b"k" * 32, keep=90 * 86400.0,
                         checkpoints=None)
    pruner.start()
    await wait_until(lambda: pruner.runs >= 1, timeout=5)
    # The default interval is a day; stop must not wait for it.
    await asyncio.wait_for(pruner.stop(), timeout=2)
