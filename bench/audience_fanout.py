"""Audience fan-out benchmark: a broadcast to a board's 30,000 guardian addresses.

    python bench/audience_fanout.py [--accounts 15000] [--rounds 3] [--database-url URL]

Imports ACCOUNTS children with two confirmed contacts each (bench/people_import.py's CSV),
then times, per round: resolving the whole board to addresses alone (one query, opening every
sealed address), the whole `send_broadcast` (resolution + fan-out + counts in one transaction,
then linking deliveries to contacts after the commit) and, within it, the moment the runners'
wake-up (the queue's NOTIFY at commit) arrives on another connection,
and, for comparison, `Queue.enqueue` of the same addresses given directly (bench/fanout.py);
then what opening a sealed address costs on its own.
Prints one line per round, under it the fan-out's breakdown until the runners wake (each
statement's wall time, with this process's CPU and, when the database runs on this machine, the
server process's CPU during it, and the Python work between statements), and, last, one JSON
line. CPU times say where the work is even when the machine is shared; wall times do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from people_import import database_url, import_board  # noqa: E402

from engine.people import Audience, Category, People, resolve  # noqa: E402
from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings, PeopleSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.queue.store import NOTIFY_CHANNEL  # noqa: E402
from engine.twoway import send_broadcast  # noqa: E402


def _server_cpu(pid: int) -> float:
    """CPU seconds of a PostgreSQL server process on this machine (0 when it is elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def statements() -> Iterator[list[tuple[str, float, float, float, float]]]:
    """Every statement run meanwhile: (what, start, end, our CPU, the server's CPU)."""
    log: list[tuple[str, float, float, float, float]] = []
    names = ("fetch", "fetchval", "fetchrow", "execute", "copy_records_to_table")
    originals = {n: getattr(asyncpg.connection.Connection, n) for n in names}

    def timed(name: str) -> Any:
        original = originals[name]

        async def run(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
            pid = self.get_server_pid()
            t0, c0, s0 = time.perf_counter(), time.process_time(), _server_cpu(pid)
            try:
                return await original(self, *args, **kwargs)
            finally:
                what = "COPY deliveries" if name == "copy_records_to_table" else args[0]
                log.append((" ".join(str(what).split())[:60], t0, time.perf_counter(),
                            time.process_time() - c0, _server_cpu(pid) - s0))
        return run

    for n in names:
        setattr(asyncpg.connection.Connection, n, timed(n))
    try:
        yield log
    finally:
        for n, original in originals.items():
            setattr(asyncpg.connection.Connection, n, original)


def breakdown(log: list[tuple[str, float, float, float, float]], t0: float, woken: float) -> str:
    """The statements from t0 until the runners woke, and the Python work between them."""
    lines, prev = [], t0
    for what, start, end, ours, server in log:
        if start < t0 or end > woken:
            continue
        if start - prev >= 0.005:
            lines.append(f"    python between statements {start - prev:7.3f} s")
        if end - start >= 0.005:
            lines.append(f"    {what:60s} {end - start:7.3f} s (our CPU {ours:.3f} s, "
                         f"server CPU {server:.3f} s)")
        prev = end
    lines.append(f"    commit until the NOTIFY is heard {woken - prev:7.3f} s")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    url = database_url(args.database_url)
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    people = await People.open(pool, PeopleSettings(key=new_key_text()), SystemClock())
    board = await import_board(people, args.accounts, args.schools)
    queue = Queue(pool, people.sealer)
    audience = Audience(boards=(board.id,))
    message = NewBroadcast(
        sender="kyouiku@city.example.jp", subject="【緊急】台風接近に伴う臨時休校",
        body="台風の接近に伴い、明日は全校臨時休校とします。\n" * 10, recipients=[],
        priority=Priority.EMERGENCY,
    )
    resolve_t, send_t, plain_t, wake_t = [], [], [], []
    recipients = 0
    # The runners' view: when the NOTIFY of the commit reaches a listening connection.
    woken: list[float] = []
    def heard(*_: object) -> None:
        woken.append(time.perf_counter())

    listener = await pool.acquire()
    await listener.add_listener(NOTIFY_CHANNEL, heard)
    for round_no in range(args.rounds):
        woken.clear()
        t0 = time.perf_counter()
        resolved = await resolve(
            pool, people, audience, Category.EMERGENCY, Priority.EMERGENCY, people.clock.now()
        )
        t1 = time.perf_counter()
        with statements() as log:
            fan = await send_broadcast(
                people, queue, message, audience, Category.EMERGENCY, 86400
            )
        t2 = time.perf_counter()
        await queue.enqueue(
            NewBroadcast(message.sender, message.subject, message.body,
                         list(resolved.recipients), Priority.EMERGENCY),
            people.clock.now(), 86400,
        )
        t3 = time.perf_counter()
        recipients = fan.recipients
        resolve_t.append(t1 - t0)
        send_t.append(t2 - t1)
        plain_t.append(t3 - t2)
        wake_t.append(woken[0] - t1 if woken else float("nan"))
        print(
            f"round {round_no + 1}: {fan.recipients} recipients: resolve {t1 - t0:.3f} s, "
            f"resolve + fan-out until the runners wake {wake_t[-1]:.3f} s, with linking after "
            f"the commit {t2 - t1:.3f} s (addresses given directly: {t3 - t2:.3f} s); "
            f"load {os.getloadavg()[0]:.2f}"
        )
        if woken:
            print(breakdown(log, t1, woken[0]))
    await listener.remove_listener(NOTIFY_CHANNEL, heard)
    await pool.release(listener)
    await pool.close()
    # What sealing costs per address, for the hot path: open 30,000 sealed addresses.
    sealed = [people.sealer.seal(a, "contact.address") for a in resolved.recipients]
    t0 = time.perf_counter()
    for blob in sealed:
        people.sealer.open(blob, "contact.address")
    open_seconds = time.perf_counter() - t0
    print(f"opening {len(sealed)} sealed addresses alone: {open_seconds:.3f} s "
          f"({open_seconds / len(sealed) * 1e6:.1f} µs each)")
    return {
        "open_sealed_seconds": round(open_seconds, 4),
        "recipients": recipients,
        "resolve_median_seconds": round(statistics.median(resolve_t), 4),
        "send_best_seconds": round(min(send_t), 4),
        "send_median_seconds": round(statistics.median(send_t), 4),
        "until_runners_wake_median_seconds": round(statistics.median(wake_t), 4),
        "plain_enqueue_median_seconds": round(statistics.median(plain_t), 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=15_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
