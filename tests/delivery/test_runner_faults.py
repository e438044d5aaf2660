"""The runner's promises under faults that need no database restart: a resolver that lies,
receivers that refuse or answer 421 at the greeting, leases held by a live runner elsewhere,
and one readable log line per suspension."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from faults import Behaviour, FaultyReceiver
from sinks import free_port
from support import make_settings

from engine.delivery._reporter import Reporter
from engine.delivery._routing import MxAnswer, Router
from engine.delivery.context import Engine
from engine.platform.clock import SystemClock
from engine.queue import NewBroadcast, liveness
from engine.throttle import SiteState


async def enqueue(eng: Engine, recipients: list[str]) -> int:
    b = NewBroadcast(sender="kyouiku@city.example.jp", subject="臨時休校",
                     body="台風のため臨時休校です。\n", recipients=recipients)
    return await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)


class LyingResolver:
    """A resolver that answers NXDOMAIN for every domain, as a broken or hijacked one does."""

    async def lookup(self, domain: str) -> MxAnswer:
        return MxAnswer((), 300, exists=False)


async def test_nxdomain_for_a_known_mail_domain_is_a_resolver_fault(db_url: str) -> None:
    eng = await Engine.open(make_settings(db_url))
    try:
        # example.jp took our mail before; docomo is a well-known carrier; the third is unknown.
        await liveness.remember_domains(eng.pool, ["example.jp"], eng.clock.now())
        bid = await enqueue(eng, ["a@docomo.ne.jp", "b@example.jp", "c@nowhere.example"])
        runner = await eng.runner(router=Router(eng.settings.routing, lookup=LyingResolver()))
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}
        suppressed = await eng.pool.fetchval("SELECT count(*) FROM suppressions")
    finally:
        await eng.close()
    for known in ("a@docomo.ne.jp", "b@example.jp"):
        assert (rows[known]["state"], rows[known]["reason"]) == ("deferred", "networkerror")
        assert "resolver" in rows[known]["last_text"]
    assert (rows["c@nowhere.example"]["state"], rows["c@nowhere.example"]["reason"]) == (
        "failed", "hostunknown")
    # Only the unknown domain's address may be suppressed; the guardians on known domains not.
    assert suppressed <= 1


async def test_a_refused_connection_is_recorded_on_the_delivery_with_shaping_on(
    db_url: str,
) -> None:
    port = free_port()
    settings = make_settings(db_url, routing={"transport": {"*": f"127.0.0.1:{port}"}})
    from dataclasses import replace

    eng = await Engine.open(replace(settings, shaping={"enabled": True}))
    try:
        bid = await enqueue(eng, ["a@example.jp"])
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        try:
            async def noted() -> bool:
                n = await eng.pool.fetchval("SELECT count(*) FROM delivery_attempts")
                return bool(n)

            for _ in range(200):
                if await noted():
                    break
                await asyncio.sleep(0.05)
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=15)
        (row,) = await eng.queue.deliveries_of(bid)
        attempts = await eng.pool.fetch("SELECT text FROM delivery_attempts")
    finally:
        await eng.close()
    assert attempts, "the refused connection left no attempt row"
    assert row["last_text"], "the delivery does not say why it is waiting"
    assert row["last_text"] == attempts[-1]["text"]


async def test_421_at_the_greeting_with_shaping_off_is_a_deferral_not_a_loop(
    db_url: str,
) -> None:
    behaviour = Behaviour()
    behaviour.greeting_421.set()
    with FaultyReceiver(behaviour) as receiver:
        settings = make_settings(db_url, routing={"transport": {"*": receiver.address}},
                                 queue={"retry_base": 0.5, "retry_max": 1.0})
        eng = await Engine.open(settings)
        try:
            bid = await enqueue(eng, [f"g{i}@example.jp" for i in range(10)])
            runner = await eng.runner()
            task = asyncio.create_task(runner.run())
            await asyncio.sleep(3.0)  # the receiver keeps refusing: count what 3 s bring
            runner.stop()
            await asyncio.wait_for(task, timeout=15)
            rows = await eng.queue.deliveries_of(bid)
            states = runner.shaper.snapshot()
        finally:
            await eng.close()
    # Each attempt counts and waits out its back-off: a handful of connections, not thousands.
    assert receiver.handler.greeting_refusals <= 10 * 8
    assert all(r["attempts"] >= 1 for r in rows)
    assert all("Service not available" in (r["last_text"] or "") for r in rows)
    # Fixed limits never suspend or cut.
    assert all(s.suspended_until is None and s.cuts == 0 for s in states)


async def test_exit_when_idle_waits_for_rows_leased_by_a_live_runner(db_url: str) -> None:
    eng = await Engine.open(make_settings(db_url))
    try:
        bid = await enqueue(eng, ["a@example.jp"])
        now = eng.clock.now()
        await liveness.heartbeat(eng.pool, "elsewhere:1", now)
        await eng.pool.execute(
            "UPDATE deliveries SET state='sending', lease_owner='elsewhere:1', "
            "next_attempt_at=$1 WHERE broadcast_id=$2", now + timedelta(minutes=5), bid)
        runner = await eng.runner()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(runner.run(exit_when_idle=True)), timeout=2)
        runner.stop()
    finally:
        await eng.close()


async def test_gone_runners_leases_are_made_due_and_live_ones_are_not(db_url: str) -> None:
    eng = await Engine.open(make_settings(db_url))
    try:
        bid = await enqueue(eng, ["a@example.jp", "b@example.jp", "c@example.jp"])
        now = eng.clock.now()
        later = now + timedelta(minutes=5)
        await liveness.heartbeat(eng.pool, "alive:1", now)
        await liveness.heartbeat(eng.pool, "silent:2", now - timedelta(seconds=60))
        rows = await eng.queue.deliveries_of(bid)
        owners = ["alive:1", "silent:2", "never-announced:3"]
        for row, owner in zip(rows, owners, strict=True):
            await eng.pool.execute(
                "UPDATE deliveries SET state='sending', lease_owner=$1, next_attempt_at=$2 "
                "WHERE id=$3", owner, later, row["id"])
        n = await liveness.reclaim_gone(eng.pool, "me:0", now, 15.0)
        due = {
            r["lease_owner"]: r["next_attempt_at"] <= now
            for r in await eng.pool.fetch("SELECT lease_owner, next_attempt_at FROM deliveries")
        }
    finally:
        await eng.close()
    assert n == 2
    assert due == {"alive:1": False, "silent:2": True, "never-announced:3": True}


def test_each_suspension_and_resumption_is_one_readable_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SystemClock()

    def state(until: object, suspensions: int) -> SiteState:
        return SiteState(
            source="192.0.2.10", site="docomo", profile="docomo", rate=2.5, floor=0.5,
            ceiling=20, connections_in_use=0, connections_allowed=2, max_connections=4,
            suspended_until=until, suspensions=suspensions, cuts=6, sent=10, delivered=4,  # type: ignore[arg-type]
            deferred=6, throttled=6, refused=0, failed=0, waiting=0, warmup_sent_today=0,
            warmup_limit_today=None,
        )

    reporter = Reporter("r", None, None, clock, None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="engine.delivery._reporter"):
        reporter.log_changes([state(None, 0)])
        reporter.log_changes([state(clock.now() + timedelta(minutes=5), 1)])
        reporter.log_changes([state(clock.now() + timedelta(minutes=5), 1)])
        reporter.log_changes([state(None, 1)])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "suspended: site docomo from 192.0.2.10" in lines[0]
    assert "resumed: site docomo from 192.0.2.10" in lines[1]


async def test_sigterm_does_not_wait_the_grace_for_mail_that_is_only_waiting(
    db_url: str,
) -> None:
    # The site's only connection slot is taken (as by a suspension or a busy carrier): the
    # lane's worker waits for a grant, nothing is on the wire, so a stop must not sit out the
    # 30-second shutdown grace.
    from engine.throttle import DEFAULT_POOL

    with FaultyReceiver() as receiver:
        settings = make_settings(db_url, routing={"transport": {"*": receiver.address}},
                                 delivery={"shutdown_grace": 30.0, "connections_per_host": 1})
        eng = await Engine.open(settings)
        try:
            runner = await eng.runner()
            route = await runner.router.route("example.jp")
            site = runner.shaper.site_for("example.jp", route.mx_hosts)
            held = await runner.shaper.acquire(site, DEFAULT_POOL)
            await enqueue(eng, [f"g{i}@example.jp" for i in range(20)])
            task = asyncio.create_task(runner.run())
            for _ in range(200):
                if runner.stats.claimed:
                    break
                await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            started = loop.time()
            runner.stop()
            stats = await asyncio.wait_for(task, timeout=25)
            took = loop.time() - started
            runner.shaper.release(held)
        finally:
            await eng.close()
    assert receiver.handler.ids == {}
    assert took < 10, f"stop took {took:.1f} s"
    assert stats.released == 20


async def test_a_delivery_taken_over_from_a_gone_runner_is_marked_interrupted(
    db_url: str,
) -> None:
    """The gone runner may have sent it before dying: whatever ends it later, the row says so
    (migration 020); rows nobody had on the wire are not marked."""
    from engine.queue import AttemptResult, Outcome

    eng = await Engine.open(make_settings(db_url))
    try:
        bid = await enqueue(eng, ["a@example.jp", "b@example.jp", "c@example.jp",
                                  "d@example.jp"])
        now = eng.clock.now()
        ids = {r["recipient"]: r["id"] for r in await eng.queue.deliveries_of(bid)}
        # The gone runner held a and b; c and d it never claimed.
        gone = await eng.queue.claim("gone:1", 2, now, 300.0)
        assert sorted(c.recipient for c in gone) == ["a@example.jp", "b@example.jp"]
        # b's lease runs out past its maximum age: expired in the database, still leased.
        await eng.pool.execute("UPDATE deliveries SET expires_at = $1, next_attempt_at = $1 "
                               "WHERE id = $2", now, ids["b@example.jp"])
        assert await liveness.expire_overdue(eng.pool, now, None) == 1
        # a is taken over and then refused for good, as is c, which nobody had before.
        await liveness.reclaim_gone(eng.pool, "me:0", now, 15.0)
        by = {c.recipient: c for c in await eng.queue.claim("me:0", 4, now, 300.0)}
        assert sorted(by) == ["a@example.jp", "c@example.jp", "d@example.jp"]
        failed = [AttemptResult(by[a].id, Outcome.FAILED, now, 550, "5.1.1", "no such user",
                                reason="unknown_user") for a in ("a@example.jp", "c@example.jp")]
        assert await eng.queue.record("me:0", failed) == 2
        rows = {r["id"]: (r["state"], r["interrupted"]) for r in await eng.pool.fetch(
            "SELECT id, state, interrupted FROM deliveries")}
    finally:
        await eng.close()
    assert rows == {
        ids["a@example.jp"]: ("failed", True),
        ids["b@example.jp"]: ("failed", True),
        ids["c@example.jp"]: ("failed", False),
        ids["d@example.jp"]: ("sending", False),
    }
