"""Faults of a typhoon night, on real parts: the outcome writer failing, the database
restarting or away for 20 s, a receiver that stalls, resets and answers 421 in bursts, a runner
killed with SIGKILL. After each: nothing lost, every delivery final, duplicates only among the
mails whose outcome was in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import (
    FaultyReceiver,
    OwnPostgres,
    Report,
    enqueue,
    fresh_database,
    running_runner,
    scenario_database,
    scenario_receiver,
    scenario_settings,
    scenario_sigkill,
    scenario_writer_error,
    until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        yield pg
    finally:
        pg.close()


def assert_sound(r: Report) -> None:
    assert r.stuck == 0, r
    assert r.lost == 0, r
    assert r.duplicates <= r.in_flight_bound, r
    if r.at_fault is not None:
        assert r.at_fault < r.recipients, "the fault came after the last mail: nothing tested"


async def test_an_error_in_the_outcome_writer_repeats_nothing(own_pg: OwnPostgres) -> None:
    r = await scenario_writer_error(own_pg, 300)
    assert_sound(r)
    assert r.received == 300
    # The failed batch was kept and written again: no lease ran out, nothing went twice.
    assert r.duplicates == 0


async def test_a_database_restart_mid_broadcast_loses_nothing(own_pg: OwnPostgres) -> None:
    r = await scenario_database(own_pg, 600, outage=0)
    assert_sound(r)
    assert r.received == 600
    assert r.states == {"delivered": 600}


async def test_a_20_second_database_outage_loses_nothing(own_pg: OwnPostgres) -> None:
    r = await scenario_database(own_pg, 600, outage=20)
    assert_sound(r)
    assert r.received == 600


# Long enough for several rounds of retries (1-5 s apart) and stalled DATA (2 s timeout) before
# the mails expire; short enough that each scenario stays under a minute.
MAX_AGE = 40.0


async def test_sigterm_is_obeyed_while_the_database_is_away(own_pg: OwnPostgres) -> None:
    db_url = await fresh_database(own_pg.uri)
    with FaultyReceiver() as receiver:
        settings = scenario_settings(db_url, receiver.address)
        try:
            async with running_runner(settings) as (engine, runner, task):
                await enqueue(engine, [f"g{i}@example.jp" for i in range(200)])
                await until(lambda: sum(receiver.handler.ids.values()) >= 20, within=30)
                await asyncio.to_thread(own_pg.stop)
                started = time.monotonic()
                runner.stop()
                await asyncio.wait_for(asyncio.shield(task), timeout=30)
                assert time.monotonic() - started < 30
        finally:
            await asyncio.to_thread(own_pg.start)


async def test_receiver_faults_leave_every_delivery_final_by_max_age(
    own_pg: OwnPostgres,
) -> None:
    max_age = MAX_AGE
    r = await scenario_receiver(own_pg, 300, max_age)
    assert_sound(r)
    # Final by max_age plus a margin of a few SMTP timeouts, whatever the receiver does.
    assert r.seconds <= max_age + 15, r
    # Nobody is left without a final word: the 1% whose DATA never answers failed, and every
    # failure says why (expired, with the last reply the receiver gave).
    # Every mail either arrived or ended failed. A mail on the wire at the kill may have been
    # accepted although its runner never recorded it; taken over, it can then expire while the
    # receiver misbehaves: arrived and failed, as a duplicate is sent twice. So the overlap is
    # bounded by what was leased, like the duplicates.
    overlap = r.received + r.states.get("failed", 0) - 300
    assert 0 <= overlap <= r.in_flight_bound, r
    assert r.failed_reasons and set(r.failed_reasons) == {"expired"}, r
    assert r.failed_without_text == 0, r
    assert r.stalled_failed == 3, r


async def test_a_killed_runner_s_leases_are_taken_over_without_waiting_for_the_lease(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    r = await scenario_sigkill(own_pg, 1000, tmp_path)
    assert_sound(r)
    assert r.received == 1000
    # The lease is 5 minutes; the heartbeat rule hands the rows over within seconds.
    assert r.seconds < 90, r


async def test_a_runner_killed_during_a_database_outage_loses_nothing(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    r = await scenario_sigkill(own_pg, 1000, tmp_path, during="outage")
    assert_sound(r)
    assert r.received == 1000


async def test_a_runner_killed_while_the_receiver_misbehaves_still_ends_final_by_max_age(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    max_age = MAX_AGE
    r = await scenario_sigkill(own_pg, 300, tmp_path, during="receiver", max_age=max_age)
    assert_sound(r)
    # Every mail either arrived or ended failed. A mail on the wire at the kill may have been
    # accepted although its runner never recorded it; taken over, it can then expire while the
    # receiver misbehaves: arrived and failed, as a duplicate is sent twice. So the overlap is
    # bounded by what was leased, like the duplicates.
    overlap = r.received + r.states.get("failed", 0) - 300
    assert 0 <= overlap <= r.in_flight_bound, r
    # ... and each such failure says the mail may have arrived (migration 020).
    assert r.arrived_failed_unmarked == 0, r
    assert r.failed_without_text == 0, r
    # Counted from the second runner's start: the deliveries were enqueued ~4 s earlier.
    assert r.seconds <= max_age + 15, r
