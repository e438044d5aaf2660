"""Two-way benchmark: linking a 30,000-address broadcast, recording reads, staff queries.

    python bench/twoway.py [--accounts 15000] [--clicks 15000] [--concurrency 16]
                           [--database-url URL]

Imports ACCOUNTS children with two confirmed contacts each (bench/people_import.py's CSV),
sends one broadcast to the whole board, then times: ``link_deliveries`` (what fan-out adds per
broadcast), ``record_read`` for CLICKS deliveries (default half of them; the others stay
unread) through CONCURRENCY tasks (the engine's side of the read links, without HTTP), and
``read_by_class`` and ``due_read_reminders`` over the whole broadcast. Prints one line per step
and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from people_import import database_url, import_board  # noqa: E402

from engine.people import Audience, Category, People  # noqa: E402
from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings, PeopleSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.twoway import (  # noqa: E402
    due_read_reminders,
    link_deliveries,
    read_by_class,
    record_read,
    request_read,
    send_broadcast,  # noqa: E402
)


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    url = database_url(args.database_url)
    pool = await create_pool(
        DatabaseSettings(url=url, pool_min=1, pool_max=max(2, args.concurrency)), url
    )
    people = await People.open(pool, PeopleSettings(key=new_key_text()), SystemClock())
    board = await import_board(people, args.accounts, args.schools)
    queue = Queue(pool, people.sealer)
    message = NewBroadcast(
        sender="kyouiku@city.example.jp", subject="【確認】台風接近に伴う臨時休校",
        body="台風の接近に伴い、明日は全校臨時休校とします。\n" * 10, recipients=[],
        priority=Priority.NORMAL,
    )
    t0 = time.perf_counter()
    fan = await send_broadcast(
        people, queue, message, Audience(boards=(board.id,)), Category.NOTICE, 86400
    )
    t1 = time.perf_counter()
    # The fan-out linked the deliveries already (in its transaction): remove the links and make
    # them again to time linking on its own, as one transaction like the fan-out's.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM delivery_accounts WHERE broadcast_id = $1",
                           fan.broadcast_id)
        await conn.execute("DELETE FROM delivery_contacts WHERE broadcast_id = $1",
                           fan.broadcast_id)
        t1a = time.perf_counter()
        linked = await link_deliveries(conn, people, fan.broadcast_id)
        t2 = time.perf_counter()
    print(f"fan-out of {fan.recipients} recipients (linking included) {t1 - t0:.3f} s; "
          f"link_deliveries alone {linked} in {t2 - t1a:.3f} s")
    await request_read(people, fan.broadcast_id, timedelta(hours=2), 2)
    ids = [r["id"] for r in await queue.deliveries_of(fan.broadcast_id)]
    # Mark them delivered long ago so the reminder query has real work to do.
    await pool.execute(
        "UPDATE deliveries SET state = 'delivered', finished_at = now() - interval '3 hours' "
        "WHERE broadcast_id = $1", fan.broadcast_id,
    )
    clicks = min(args.clicks, len(ids))
    pending = iter(ids[:clicks])

    async def clicker() -> None:
        for delivery_id in pending:
            await record_read(people, delivery_id)

    t3 = time.perf_counter()
    await asyncio.gather(*(clicker() for _ in range(args.concurrency)))
    t4 = time.perf_counter()
    print(f"record_read: {clicks} first clicks in {t4 - t3:.3f} s "
          f"({clicks / (t4 - t3):.0f}/s, {args.concurrency} tasks)")
    classes = await read_by_class(people, fan.broadcast_id)
    t5 = time.perf_counter()
    due = await due_read_reminders(people, people.clock.now(), fan.broadcast_id)
    t6 = time.perf_counter()
    print(f"read_by_class ({len(classes)} classes) {t5 - t4:.3f} s; "
          f"due_read_reminders ({len(due)} due) {t6 - t5:.3f} s")
    await pool.close()
    return {
        "recipients": fan.recipients,
        "fanout_seconds": round(t1 - t0, 3),
        "link_seconds": round(t2 - t1a, 3),
        "clicks": clicks,
        "clicks_per_second": round(clicks / (t4 - t3)),
        "read_by_class_seconds": round(t5 - t4, 3),
        "due_reminders_seconds": round(t6 - t5, 3),
        "due": len(due),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=15_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--clicks", type=int, default=15_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
