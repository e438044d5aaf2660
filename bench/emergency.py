"""Emergency overtakes bulk: how soon an emergency broadcast goes out behind a bulk backlog.

    python bench/emergency.py [--bulk 30000] [--emergency 300] [--ips 4] [--database-url URL]

Starts the carrier simulator and ``mamoru serve`` (shaping on, K egress addresses), enqueues a
bulk broadcast of ``--bulk`` mails with the benchmark's recipient mix, waits until it is well
under way, then submits an emergency broadcast to ``--emergency`` other guardians and measures
the time from submitting it to its first and its last delivery, and how much of the bulk
broadcast was still waiting then. Last line JSON
``{"bulk":N,"emergency":M,"first_seconds":F,"last_seconds":L,"bulk_waiting":W}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import shaping  # noqa: E402
import throughput  # noqa: E402
from carriersim import DEFAULT_LIMITS  # noqa: E402
from people_import import database_url  # noqa: E402

from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import Sealer  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def config_text(db_url: str, ports: dict[str, int], ips: int) -> str:
    lines = [
        "[database]", f'url = "{db_url}"', "",
        "[metrics]", 'listen = ""', "",
        "[inbound]", 'listen = ""', "",
        "[dkim]", "allow_unsigned = true", "",
        "[people]", f'key = "{throughput.BENCH_PEOPLE_KEY}"', "",
        "[routing.transport]",
    ]
    for name, lim in DEFAULT_LIMITS.items():
        for domain in lim.domains:
            lines.append(f'"{domain}" = "127.0.0.1:{ports[name]}"')
    for i in range(ips):
        lines += ["", "[[egress.sources]]", f'address = "127.0.0.{2 + i}"',
                  f'helo = "mx{i + 1}.city.example.jp"', "weight = 1"]
    return "\n".join(lines) + "\n"


async def enqueue(pool: object, rcpts: list[str], priority: Priority, subject: str) -> int:
    sealer = Sealer.from_key(throughput.BENCH_PEOPLE_KEY, "")
    queue = Queue(pool, sealer)  # type: ignore[arg-type]
    return await queue.enqueue(
        NewBroadcast(throughput.SENDER, subject, throughput.BODY, rcpts, priority),
        SystemClock().now(), 86400,
    )


async def scenario(args: argparse.Namespace, db_url: str, cfg: Path) -> dict[str, object]:
    pool = await create_pool(DatabaseSettings(url=db_url, pool_min=1, pool_max=2), db_url)
    bulk, _ = shaping.recipients(args.bulk)
    bulk_id = await enqueue(pool, bulk, Priority.BULK, "学校だより 11月号")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        while True:  # let the bulk broadcast get going
            if serve.returncode is not None or time.monotonic() - started > 300:
                raise RuntimeError(f"mamoru serve did not deliver (exit {serve.returncode})")
            done = await pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 AND state = 'delivered'",
                bulk_id,
            )
            if done >= min(1000, args.bulk // 10):
                break
            await asyncio.sleep(0.2)
        urgent = [f"kinkyu{i}@{domain}" for i, (domain, _) in
                  zip(range(args.emergency), shaping.MIX * args.emergency, strict=False)]
        submitted = time.time()
        urgent_id = await enqueue(pool, urgent, Priority.EMERGENCY, "【緊急】不審者情報")
        first = last = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            row = await pool.fetchrow(
                "SELECT count(*) FILTER (WHERE state = 'delivered') AS n, "
                "extract(epoch FROM min(finished_at)) AS first, "
                "extract(epoch FROM max(finished_at)) AS last "
                "FROM deliveries WHERE broadcast_id = $1 AND reason IS DISTINCT FROM 'userunknown'",
                urgent_id,
            )
            if row["n"] and first is None:
                first = float(row["first"]) - submitted
            if row["n"] == args.emergency:
                last = float(row["last"]) - submitted
                break
            await asyncio.sleep(0.05)
        waiting = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 AND state <> 'delivered'",
            bulk_id,
        )
    finally:
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.wait(), timeout=60)
        await pool.close()
    return {"bulk": args.bulk, "emergency": args.emergency,
            "first_seconds": round(first, 3) if first is not None else None,
            "last_seconds": round(last, 3) if last is not None else None,
            "bulk_waiting": waiting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=30_000)
    parser.add_argument("--emergency", type=int, default=300)
    parser.add_argument("--ips", type=int, default=4)
    parser.add_argument("--database-url", default="", help="an empty database (default: own)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mamoru-emergency-", dir="/tmp"))
    db_url = database_url(args.database_url)
    sim, ports = shaping.start_sim(DEFAULT_LIMITS, tmp)
    try:
        cfg = tmp / "mamoru.toml"
        cfg.write_text(config_text(db_url, ports, args.ips), encoding="utf-8")
        result = asyncio.run(scenario(args, db_url, cfg))
    finally:
        shaping.stop_sim(sim)
    print(f"emergency broadcast of {args.emergency} behind {args.bulk} bulk mails:")
    print(f"  first delivered after {result['first_seconds']} s, "
          f"last after {result['last_seconds']} s")
    print(f"  bulk mails still waiting then: {result['bulk_waiting']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
