"""Read-reminder benchmark: a 30,000-address broadcast asking for reads, and its reminders.

    python bench/reminders.py [--accounts 15000] [--read 2000] [--database-url URL]

Imports ACCOUNTS children with two confirmed contacts each (bench/people_import.py's CSV),
times the fan-out of one broadcast to the whole board with read confirmation (linking every
delivery and storing the request in the same transaction), marks every delivery delivered
three hours ago and READ of them read, then times ``send_due_reminders``: finding the unread,
fanning out the reminder broadcast, tying each reminder delivery to its first delivery and
counting the reminder. Prints one line per step and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from people_import import database_url, import_board  # noqa: E402

from engine.people import Audience, Category, People  # noqa: E402
from engine.platform.clock import FakeClock  # noqa: E402
from engine.platform.config import DatabaseSettings, PeopleSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.twoway import send_broadcast  # noqa: E402
from engine.twoway.asks import Asks, ReadPolicy  # noqa: E402
from engine.twoway.reminders import send_due_reminders  # noqa: E402

# 10:00 Japan time: reminders are not sent at night.
DAYTIME = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    url = database_url(args.database_url)
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=4), url)
    clock = FakeClock(DAYTIME)
    people = await People.open(pool, PeopleSettings(key=new_key_text()), clock)
    board = await import_board(people, args.accounts, args.schools)
    queue = Queue(pool, people.sealer)
    message = NewBroadcast(
        sender="kyouiku@city.example.jp", subject="【確認】台風接近に伴う臨時休校",
        body="台風の接近に伴い、明日は全校臨時休校とします。\n" * 10, recipients=[],
        priority=Priority.NORMAL,
    )
    t0 = time.perf_counter()
    fan = await send_broadcast(
        people, queue, message, Audience(boards=(board.id,)), Category.NOTICE, 86400,
        asks=Asks(read=ReadPolicy(timedelta(hours=2), 2)),
    )
    t1 = time.perf_counter()
    print(f"fan-out with linking and read request: {fan.recipients} recipients in "
          f"{t1 - t0:.3f} s")
    await pool.execute(
        "UPDATE deliveries SET state = 'delivered', finished_at = $2 WHERE broadcast_id = $1",
        fan.broadcast_id, DAYTIME - timedelta(hours=3),
    )
    await pool.execute(
        "INSERT INTO delivery_reads (delivery_id, broadcast_id, read_at) "
        "SELECT id, broadcast_id, $2 FROM deliveries WHERE broadcast_id = $1 "
        "ORDER BY id LIMIT $3",
        fan.broadcast_id, DAYTIME - timedelta(hours=1), args.read,
    )
    t2 = time.perf_counter()
    sent = await send_due_reminders(people, queue, 86400)
    t3 = time.perf_counter()
    reminded: int = await pool.fetchval(
        "SELECT count(*) FROM reminder_deliveries r JOIN deliveries d ON d.id = r.delivery_id "
        "WHERE d.broadcast_id = ANY($1::bigint[])", sent,
    )
    print(f"send_due_reminders: {reminded} reminder deliveries tied back in {t3 - t2:.3f} s")
    await pool.close()
    return {
        "recipients": fan.recipients,
        "fanout_seconds": round(t1 - t0, 3),
        "reminded": reminded,
        "reminders_seconds": round(t3 - t2, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=15_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--read", type=int, default=2_000)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
