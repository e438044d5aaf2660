"""The runner under the traffic shaper: egress addresses, slowing down, priority lanes."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sinks import Sink
from support import make_settings, wait_until

from engine.delivery.context import Engine
from engine.platform import metrics
from engine.queue import NewBroadcast, Priority

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from carriersim import CarrierLimits, CarrierSim  # noqa: E402

SOURCES = [
    {"address": "127.0.0.2", "helo": "a.mamoru.example.jp", "weight": 1},
    {"address": "127.0.0.3", "helo": "b.mamoru.example.jp", "weight": 1},
    {"address": "127.0.0.4", "helo": "c.mamoru.example.jp", "weight": 0},
]


async def open_engine(db_url: str, transport: dict[str, str], shaping: dict[str, Any]) -> Engine:
    settings = make_settings(db_url, routing={"transport": transport})
    settings = replace(settings, shaping=shaping, egress={"sources": SOURCES})
    return await Engine.open(settings)


async def enqueue(eng: Engine, recipients: list[str], priority: Priority = Priority.NORMAL) -> int:
    b = NewBroadcast("kyouiku@city.example.jp", "お知らせ", "本文です。\n", recipients, priority)
    return await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)


async def test_connections_come_from_the_egress_sources_with_their_helo(db_url: str) -> None:
    fast = {"profiles": {"default": {"max_rate": 1000.0, "initial_rate": 1000.0}}}
    with Sink() as sink:
        eng = await open_engine(db_url, {"*": sink.address}, fast)
        try:
            await enqueue(eng, [f"g{i}@example.jp" for i in range(60)])
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
        finally:
            await eng.close()
        received = list(sink.handler.received)
    assert len(received) == 60
    used = {r.peer[0] for r in received}
    assert used == {"127.0.0.2", "127.0.0.3"}  # both weighted sources, never the weight-0 one
    helo_of = {r.peer[0]: r.helo for r in received}
    assert helo_of == {"127.0.0.2": "a.mamoru.example.jp", "127.0.0.3": "b.mamoru.example.jp"}


@pytest.mark.slow
async def test_runner_finds_a_carriers_hidden_limit_without_being_blocked(db_url: str) -> None:
    # The simulated docomo takes 15 mails/s per source IP; the profile starts four times faster.
    limits = {"docomo": CarrierLimits("docomo", "docomo", ("docomo.ne.jp",), 4, 15.0, 4.0, 50)}
    too_fast = {"profiles": {"docomo": {"initial_rate": 60.0, "max_rate": 100.0}}}
    own_fault_before = metrics.OWN_FAULT._value.get()
    async with CarrierSim(limits) as sim:
        transport = {"docomo.ne.jp": f"127.0.0.1:{sim.ports['docomo']}"}
        eng = await open_engine(db_url, transport, too_fast)
        try:
            bid = await enqueue(eng, [f"hogosha{i}@docomo.ne.jp" for i in range(150)])
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=60)
            rows = await eng.queue.deliveries_of(bid)
            states = runner.shaper.snapshot()
        finally:
            await eng.close()
        stats = sim.stats()["docomo"]["totals"]
    assert all(r["state"] == "delivered" for r in rows)
    # "Too fast" replies went round again without counting as attempts.
    assert all(r["attempts"] == 1 for r in rows)
    assert stats["violations"], "the carrier never said 'too fast': nothing was tested"
    assert metrics.OWN_FAULT._value.get() > own_fault_before
    assert stats["blocks"] == 0
    docomo = [s for s in states if s.site == "docomo"]
    assert docomo and sum(s.cuts for s in docomo) > 0
    assert all(s.rate < 60.0 for s in docomo)  # the rate came down from where it started


@pytest.mark.slow
async def test_emergency_overtakes_a_bulk_backlog(db_url: str) -> None:
    # 20 mails/s at most: 300 bulk mails need 15 s; the emergency must not wait for them.
    slow = {"profiles": {"default": {"max_rate": 20.0, "initial_rate": 20.0}}}
    with Sink() as sink:
        eng = await open_engine(db_url, {"*": sink.address}, slow)
        try:
            await enqueue(eng, [f"bulk{i}@example.jp" for i in range(300)], Priority.BULK)
            runner = await eng.runner()
            task = asyncio.create_task(runner.run())
            await wait_until(lambda: len(sink.handler.received) >= 20, timeout=20)
            submitted = time.monotonic()
            await enqueue(eng, [f"urgent{i}@example.jp" for i in range(5)], Priority.EMERGENCY)

            def urgent_count() -> int:
                return sum(r.rcpt.startswith("urgent") for r in sink.handler.received)

            await wait_until(lambda: urgent_count() == 5, timeout=10)
            took = time.monotonic() - submitted
            bulk_done = sum(r.rcpt.startswith("bulk") for r in sink.handler.received)
            runner.stop()
            await asyncio.wait_for(task, timeout=30)
        finally:
            await eng.close()
    assert took < 3.0, f"the emergency took {took:.1f} s behind the bulk backlog"
    assert bulk_done < 250, "the bulk broadcast was nearly done: nothing was overtaken"


async def test_shaping_status_shows_each_source_and_site(db_url: str, tmp_path: Path) -> None:
    import json as json_module

    from commands import config_file, mamoru

    fast = {"profiles": {"default": {"max_rate": 1000.0, "initial_rate": 1000.0}}}
    with Sink() as sink:
        eng = await open_engine(db_url, {"*": sink.address}, fast)
        try:
            await enqueue(eng, [f"g{i}@example.jp" for i in range(10)])
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
        finally:
            await eng.close()
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    shown = await asyncio.to_thread(mamoru, "shaping", "status", "-c", cfg, "--json")
    assert shown.returncode == 0, shown.stderr
    pairs = json_module.loads(shown.stdout)["pairs"]
    assert {p["source"] for p in pairs} == {"127.0.0.2", "127.0.0.3"}
    assert sum(p["sent"] for p in pairs) == 10
    table = await asyncio.to_thread(mamoru, "shaping", "status", "-c", cfg)
    assert table.returncode == 0 and "送信速度の制御" in table.stdout


def test_workers_split_the_egress_sources_between_them(db_url: str) -> None:
    from engine.delivery.workers import worker_count, worker_settings

    settings = replace(make_settings(db_url), egress={"sources": SOURCES})
    assert worker_count(settings, 8) == 3
    shares = [worker_settings(settings, i, 2).egress["sources"] for i in range(2)]
    assert [s["address"] for s in shares[0]] == ["127.0.0.2", "127.0.0.4"]
    assert [s["address"] for s in shares[1]] == ["127.0.0.3"]


@pytest.mark.slow
async def test_mail_waiting_for_a_slow_site_keeps_its_lease(db_url: str) -> None:
    # 4 mails/s and a 2 s lease: most mail waits in the lane longer than its first lease.
    slow = {"profiles": {"default": {"max_rate": 4.0, "initial_rate": 4.0, "max_connections": 1}}}
    with Sink() as sink:
        settings = make_settings(db_url, routing={"transport": {"*": sink.address}},
                                 queue={"lease_seconds": 2.0})
        eng = await Engine.open(replace(settings, shaping=slow, egress={"sources": SOURCES[:1]}))
        try:
            bid = await enqueue(eng, [f"wait{i}@example.jp" for i in range(24)])
            runner = await eng.runner()
            task = asyncio.create_task(runner.run(exit_when_idle=True))
            await wait_until(lambda: len(sink.handler.received) >= 12, timeout=20)
            # Past the first leases: another runner must still find nothing to take.
            assert await eng.queue.claim("intruder", 100, eng.clock.now(), 60) == []
            await asyncio.wait_for(task, timeout=30)
            rows = await eng.queue.deliveries_of(bid)
        finally:
            await eng.close()
    assert all(r["state"] == "delivered" and r["attempts"] == 1 for r in rows)
    assert len(sink.handler.received) == 24


async def test_a_sender_with_its_own_egress_pool_sends_from_it(db_url: str) -> None:
    fast = {"profiles": {"default": {"max_rate": 1000.0, "initial_rate": 1000.0}}}
    sources = [
        {"address": "127.0.0.2", "helo": "a.mamoru.example.jp", "weight": 1},
        {"address": "127.0.0.5", "helo": "mail.city.example.jp", "weight": 1,
         "pool": "city.example.jp"},
    ]
    with Sink() as sink:
        settings = make_settings(db_url, routing={"transport": {"*": sink.address}})
        eng = await Engine.open(replace(settings, shaping=fast, egress={"sources": sources}))
        try:
            for sender, prefix in (("kyouiku@city.example.jp", "city"),
                                   ("school@other.example.jp", "other")):
                b = NewBroadcast(sender, "お知らせ", "本文\n",
                                 [f"{prefix}{i}@example.jp" for i in range(10)])
                await eng.queue.enqueue(b, eng.clock.now(), 3600)
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
        finally:
            await eng.close()
        peers = {(r.rcpt[:4], r.peer[0]) for r in sink.handler.received}
    assert len(sink.handler.received) == 20
    assert peers == {("city", "127.0.0.5"), ("othe", "127.0.0.2")}


async def test_a_blocked_address_hands_its_mail_to_the_others_and_fails_nobody(
    db_url: str,
) -> None:
    limits = {"docomo": CarrierLimits(
        "docomo", "generic", ("docomo.ne.jp",), 4, 200.0, 20.0, 100,
        replies={"blocked_greeting": "554 5.7.1 Service unavailable; client host blocked"},
    )}
    fast = {"profiles": {"docomo": {"initial_rate": 50.0, "max_rate": 100.0}}}
    blocked_before = metrics.BLOCKED_DELIVERIES.labels("docomo")._value.get()
    async with CarrierSim(limits) as sim:
        # The carrier has blocked 127.0.0.2 already; 127.0.0.3 is fine.
        sim.carriers["docomo"].source("127.0.0.2").blocked_until = float("inf")
        transport = {"docomo.ne.jp": f"127.0.0.1:{sim.ports['docomo']}"}
        eng = await open_engine(db_url, transport, fast)
        try:
            bid = await enqueue(eng, [f"hogosha{i}@docomo.ne.jp" for i in range(40)])
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
            rows = await eng.queue.deliveries_of(bid)
            states = {s.source: s for s in runner.shaper.snapshot() if s.site == "docomo"}
        finally:
            await eng.close()
        stats = sim.stats()["docomo"]["sources"]
    assert stats["127.0.0.2"]["blocked_replies"] >= 1, "the block was never met: nothing tested"
    assert [(r["state"], r["last_text"]) for r in rows if r["state"] != "delivered"] == []
    assert all(r["attempts"] == 1 for r in rows)  # the block cost nobody an attempt
    assert stats["127.0.0.3"]["accepted"] == 40
    assert states["127.0.0.2"].blocks == 1 and states["127.0.0.2"].blocked_until is not None
    assert states["127.0.0.3"].blocks == 0
    assert metrics.BLOCKED_DELIVERIES.labels("docomo")._value.get() > blocked_before


async def test_learned_limits_survive_a_restart(db_url: str) -> None:
    from engine.throttle import Feedback

    with Sink() as sink:
        eng = await open_engine(db_url, {"*": sink.address}, {})
        try:
            runner = await eng.runner()
            shaper = runner.shaper
            site = shaper.site_for("docomo.ne.jp", [])
            grant = await shaper.acquire(site)
            shaper.record(grant, Feedback.deferred(421, "closing"))  # the line: 10 msg/s
            shaper.session_ended(grant, 7, says_so=True)
            shaper.release(grant)
            learned = shaper.learned()
            await runner.reporter.report_once()
        finally:
            await eng.close()
        again = await open_engine(db_url, {"*": sink.address}, {})
        try:
            runner = await again.runner()
            await runner.reporter.load_learned()
            shaper = runner.shaper
            grant = await shaper.acquire(shaper.site_for("docomo.ne.jp", []))
            state = next(s for s in shaper.snapshot() if s.source == grant.source.address)
        finally:
            await again.close()
    key = (grant.source.address, "docomo")
    before, after = learned[key], shaper.learned()[key]
    assert (after.trouble_rate, after.session_cap) == (before.trouble_rate, before.session_cap)
    assert state.trouble_rate == 10.0 and state.rate <= 9.0  # starts under the line
    assert state.session_cap == 7 and grant.max_messages_per_connection == 7


async def test_when_every_address_is_blocked_mail_waits_deferred_without_an_attempt(
    db_url: str,
) -> None:
    limits = {"docomo": CarrierLimits(
        "docomo", "generic", ("docomo.ne.jp",), 4, 200.0, 20.0, 100,
        replies={"blocked": "554 5.7.1 Temporarily refused due to policy"},
    )}
    async with CarrierSim(limits) as sim:
        transport = {"docomo.ne.jp": f"127.0.0.1:{sim.ports['docomo']}"}
        settings = make_settings(db_url, routing={"transport": transport})
        eng = await Engine.open(replace(settings, shaping={}, egress={"sources": SOURCES[:1]}))
        try:
            # Blocked in the middle of the session (at MAIL), after the greeting went fine.
            sim.carriers["docomo"].source("127.0.0.2").blocked_until = float("inf")
            bid = await enqueue(eng, [f"hogosha{i}@docomo.ne.jp" for i in range(8)])
            runner = await eng.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
            rows = await eng.queue.deliveries_of(bid)
            due = await eng.pool.fetch("SELECT next_attempt_at FROM deliveries")
            now = eng.clock.now()
        finally:
            await eng.close()
    assert {(r["state"], r["attempts"]) for r in rows} == {("deferred", 0)}
    # The mail that met the block shows the block's reply; the mail that only waited in the
    # lane says why it waits and shows no reply that was not given to it.
    met = [r for r in rows if r["reason"] == "blocked"]
    waited = [r for r in rows if r["reason"] == "onhold"]
    assert len(met) + len(waited) == len(rows) and met and waited, rows
    assert {r["last_code"] for r in met} == {554}
    assert all(r["last_code"] is None and r["last_status"] is None for r in waited)
    assert all("not at fault" in r["last_text"] and "待機中" in r["last_text"] for r in waited)
    # Due again at the first probe, a minute on: not failed, not suppressed, not counted.
    assert all(50 <= (d["next_attempt_at"] - now).total_seconds() <= 61 for d in due)
