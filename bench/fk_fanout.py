"""The fan-out with deliveries.broadcast_id checked per row (the foreign key of migrations
001-037) against per statement (migration 038's triggers), alternated in one invocation.

    python bench/fk_fanout.py [--accounts 50000] [--rounds 3] [--database-url URL]

Three databases on one server, all at the current schema, each with ACCOUNTS children of two
confirmed contacts (bench/people_import.py's CSV); in ``per-row`` the triggers are replaced by
the foreign key again, in ``unchecked`` both are gone (what the check costs). Each round fans
a board-wide emergency broadcast out in each, in rotating order, and prints the time until
its commit (resolution, suppression lookup, COPY: bench/audience_fanout.py's measure less
the commit itself) and the COPY's wall time and the server's CPU during it. Last, the
medians, their ratio and the load average, and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audience_fanout import statements  # noqa: E402
from people_import import database_url, import_board  # noqa: E402

from engine.people import Audience, Category, People  # noqa: E402
from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings, PeopleSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.twoway import send_broadcast  # noqa: E402

# Migration 038 undone: the foreign key back, the triggers gone.
PER_ROW_SQL = """
DROP TRIGGER deliveries_broadcast_exists ON deliveries;
DROP TRIGGER deliveries_broadcast_fixed ON deliveries;
DROP TRIGGER broadcasts_keep_deliveries ON broadcasts;
DROP TRIGGER broadcasts_id_kept ON broadcasts;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_broadcast_id_fkey
    FOREIGN KEY (broadcast_id) REFERENCES broadcasts (id);
"""

# No check at all: what the check costs, for reference.
UNCHECKED_SQL = PER_ROW_SQL.split("ALTER TABLE")[0]

VARIANTS = ("per-row", "per-statement", "unchecked")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def setup(
    url: str, variant: str, accounts: int, schools: int
) -> tuple[People, Queue, int]:
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    if variant == "per-row":
        await pool.execute(PER_ROW_SQL)
    elif variant == "unchecked":
        await pool.execute(UNCHECKED_SQL)
    people = await People.open(pool, PeopleSettings(key=new_key_text()), SystemClock())
    board = await import_board(people, accounts, schools)
    return people, Queue(pool, people.sealer), board.id


async def fan_out(people: People, queue: Queue, board_id: int) -> tuple[float, float, float]:
    """(seconds until the commit, COPY wall seconds, server CPU seconds during the COPY)."""
    message = NewBroadcast(
        sender="kyouiku@city.example.jp", subject="【緊急】台風接近に伴う臨時休校",
        body="台風の接近に伴い、明日は全校臨時休校とします。\n" * 10, recipients=[],
        priority=Priority.EMERGENCY,
    )
    committed: list[float] = []

    async def mark(_conn: asyncpg.Connection, _id: int) -> None:
        committed.append(time.perf_counter())

    t0 = time.perf_counter()
    with statements() as log:
        await send_broadcast(
            people, queue, message, Audience(boards=(board_id,)), Category.EMERGENCY, 86400,
            within=mark,
        )
    copy = [(end - start, server) for what, start, end, _, server in log
            if what == "COPY deliveries"]
    return committed[0] - t0, copy[0][0], copy[0][1]


async def main(args: argparse.Namespace) -> dict[str, object]:
    base = database_url(args.database_url)
    # Databases of this run's own beside the given one (a shared server may run others).
    names = {v: f"fk_{v.replace('-', '_')}_{uuid.uuid4().hex[:8]}" for v in VARIANTS}
    admin = await asyncpg.connect(base)
    for name in names.values():
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    try:
        return await compare(base, names, args)
    finally:
        admin = await asyncpg.connect(base)
        for name in names.values():
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def compare(base: str, names: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    setups = {}
    for variant in VARIANTS:
        setups[variant] = await setup(
            with_database(base, names[variant]), variant, args.accounts, args.schools)
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in VARIANTS}
    for round_no in range(args.rounds):
        order = VARIANTS[round_no % 3:] + VARIANTS[:round_no % 3]
        for variant in order:
            people, queue, board_id = setups[variant]
            until, copy_wall, copy_cpu = await fan_out(people, queue, board_id)
            results[variant].append((until, copy_wall, copy_cpu))
            print(f"round {round_no + 1} {variant:13s}: fan-out {until:.3f} s, COPY "
                  f"{copy_wall:.3f} s (server CPU {copy_cpu:.3f} s); "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    out: dict[str, object] = {"load": round(os.getloadavg()[0], 2)}
    for variant in VARIANTS:
        rows = results[variant]
        out[variant] = {
            "fanout_median_seconds": round(statistics.median(r[0] for r in rows), 3),
            "copy_median_seconds": round(statistics.median(r[1] for r in rows), 3),
            "copy_server_cpu_median_seconds": round(statistics.median(r[2] for r in rows), 3),
        }
    a, b, c = out["per-row"], out["per-statement"], out["unchecked"]
    assert isinstance(a, dict) and isinstance(b, dict) and isinstance(c, dict)
    for key in ("fanout_median_seconds", "copy_server_cpu_median_seconds"):
        ratio = f"{b[key] / a[key]:.2f}" if a[key] else "-"
        print(f"{key}: per-row {a[key]:.3f}, per-statement {b[key]:.3f} (ratio {ratio}), "
              f"unchecked {c[key]:.3f}; load {os.getloadavg()[0]:.2f}")
    for people, _, _ in setups.values():
        await people.pool.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
