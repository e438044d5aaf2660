"""Shaping benchmark: a Japanese school's recipient mix through the carrier simulator.

    python bench/shaping.py --messages 30000 --ips 4 [--sim-config limits.toml] [--workers N]

Starts the carrier simulator (bench/carriersim.py) as its own process, with per-source-IP
limits the engine is not told, and sends N mails from K egress addresses (127.0.0.2 ...) with
the built-in carrier profiles: mostly docomo, au and SoftBank, some Gmail, iCloud and others,
and a few unknown users. Prints the time taken (first claim to last recorded outcome), the
ideal time the simulator's rate limits allow, efficiency = ideal / actual, how many times the
simulator said "too fast" (deferred) and how many blocks it imposed; last line JSON
``{"messages":N,"seconds":S,"ideal_seconds":I,"efficiency":E,"deferred":D,"blocked":B}``.

``--sim-config`` takes simulator limits different from the defaults (TOML or JSON, a table per
carrier, e.g. ``[docomo] rate = 35``, and replies the profiles do not know), to show that the
control adapts rather than being tuned. With ``[sim] spread = 0.3`` every carrier's limits are
scaled by a random factor per run; the seed is printed (``--seed`` or ``[sim] seed`` repeat a
run). The JSON line also gives ``failed_other``: deliveries failed for any reason but the
simulated unknown users, which must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402
from carriersim import (  # noqa: E402
    CarrierLimits,
    ideal_seconds,
    limits_to_mapping,
    load_config,
    randomised,
)

from engine.platform.config import Settings, load_settings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import Sealer  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402

# Share of recipients per domain: phone mail first, as in a Japanese school's guardian list.
MIX = (
    ("docomo.ne.jp", 0.30),
    ("ezweb.ne.jp", 0.17),
    ("au.com", 0.08),
    ("softbank.ne.jp", 0.12),
    ("i.softbank.jp", 0.08),
    ("gmail.com", 0.12),
    ("icloud.com", 0.08),
    ("example.jp", 0.05),
)
UNKNOWN_EVERY = 200  # one address in 200 does not exist


def recipients(n: int) -> tuple[list[str], Counter[str]]:
    out: list[str] = []
    per_domain: Counter[str] = Counter()
    weights = [w for _, w in MIX]
    i = 0
    for domain, weight in MIX:
        count = round(n * weight / sum(weights)) if domain != MIX[-1][0] else n - len(out)
        for _ in range(count):
            local = f"unknown{i}" if i % UNKNOWN_EVERY == UNKNOWN_EVERY - 1 else f"hogosha{i}"
            out.append(f"{local}@{domain}")
            per_domain[domain] += 1
            i += 1
    return out, per_domain


def start_sim(
    limits: dict[str, CarrierLimits], tmp: Path
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    # The effective (perhaps randomised) limits go to the simulator process as JSON.
    config = tmp / "sim-limits.json"
    config.write_text(json.dumps(limits_to_mapping(limits)))
    cmd = [sys.executable, str(Path(__file__).with_name("carriersim.py")), "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        raise RuntimeError("the carrier simulator did not start")
    return proc, json.loads(first)["ports"]


def stop_sim(proc: subprocess.Popen[str]) -> dict[str, object]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    lines = [line for line in out.splitlines() if line.strip()]
    return dict(json.loads(lines[-1])) if lines else {}


def bench_settings(db_url: str, ports: dict[str, int], ips: int, limits: dict) -> Settings:
    base = load_settings(None, environ={})
    transport = {
        domain: f"127.0.0.1:{ports[name]}"
        for name, lim in limits.items()
        for domain in lim.domains
        if name in ports
    }
    sources = [
        {"address": f"127.0.0.{2 + i}", "helo": f"mx{i + 1}.city.example.jp", "weight": 1}
        for i in range(ips)
    ]
    return replace(
        base,
        database=replace(base.database, url=db_url, pool_min=1, pool_max=4),
        routing=replace(base.routing, transport=transport),
        metrics=replace(base.metrics, listen=""),
        egress={"sources": sources},
        # Retries of real failures would only lengthen the run; "too fast" replies are not
        # retried this way, they go round again through the shaper.
        queue=replace(base.queue, retry_base=60.0, retry_max=300.0),
        # The simulated carriers check no signature: this measures the shaping alone.
        dkim={"allow_unsigned": True},
        people=replace(base.people, key=throughput.BENCH_PEOPLE_KEY),
    )


async def enqueue(settings: Settings, rcpts: list[str]) -> None:
    from engine.platform.clock import SystemClock

    pool = await create_pool(settings.database, settings.database.url)
    try:
        await Queue(pool, Sealer.from_key(settings.people.key, "")).enqueue(
            NewBroadcast(throughput.SENDER, "【重要】台風接近に伴う臨時休校", throughput.BODY,
                         rcpts, Priority.EMERGENCY),
            SystemClock().now(), settings.queue.max_age,
        )
    finally:
        await pool.close()


async def outcome_counts(settings: Settings) -> tuple[dict[str, int], list[str], int]:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        rows = await pool.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        failed = await pool.fetch(
            "SELECT reason, last_code, left(last_text, 60) AS t, count(*) AS n FROM deliveries "
            "WHERE state <> 'delivered' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 8"
        )
        other = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = 'failed' "
            "AND recipient NOT LIKE 'unknown%'"
        )
        why = [f"{r['n']:>6}  {r['reason']} {r['last_code']} {r['t']}" for r in failed]
        spans = await pool.fetch(
            "SELECT d.domain, count(*) AS n, "
            "extract(epoch FROM min(a.attempted_at) - (SELECT min(attempted_at) "
            "  FROM delivery_attempts)) AS first, "
            "extract(epoch FROM max(a.attempted_at) - (SELECT min(attempted_at) "
            "  FROM delivery_attempts)) AS last "
            "FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "GROUP BY d.domain ORDER BY d.domain"
        )
        why += [
            f"span  {r['domain']:15} {r['n']:>6} attempts, {float(r['first']):6.1f} s .. "
            f"{float(r['last']):6.1f} s"
            for r in spans
        ]
        return {r["state"]: r["n"] for r in rows}, why, int(other)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--ips", type=int, default=4)
    parser.add_argument("--sim-config", default=None)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="seed of randomised limits")
    parser.add_argument("--database-url", default="", help="an empty database (default: own)")
    args = parser.parse_args()

    from engine.delivery.workers import default_worker_count, run_workers, worker_count

    limits, options = load_config(args.sim_config)
    seed: int | None = None
    if options.get("spread"):
        seed = args.seed if args.seed is not None else options.get("seed")
        if seed is None:
            seed = random.SystemRandom().randrange(1_000_000)
        limits = randomised(limits, int(seed), float(options["spread"]))
        print(f"randomised limits, seed {seed} (repeat with --seed {seed})")
        for name, lim in sorted(limits.items()):
            print(f"  {name:10} rate {lim.rate:6.2f}/s  connections {lim.max_connections:2}  "
                  f"per connection {lim.max_messages_per_connection:3}  "
                  f"block after {lim.block_after} in {lim.block_window:.0f} s")
    from people_import import database_url

    tmp = Path(tempfile.mkdtemp(prefix="mamoru-shaping-", dir="/tmp"))
    db_url = database_url(args.database_url)
    rcpts, per_domain = recipients(args.messages)
    per_carrier: Counter[str] = Counter()
    for domain, n in per_domain.items():
        carrier = next(name for name, lim in limits.items() if domain in lim.domains)
        per_carrier[carrier] += n
    ideal = ideal_seconds(per_carrier, args.ips, limits)

    sim, ports = start_sim(limits, tmp)
    try:
        settings = bench_settings(db_url, ports, args.ips, limits)
        asyncio.run(enqueue(settings, rcpts))
        workers = worker_count(settings, args.workers or default_worker_count())
        started = time.monotonic()
        stats = run_workers(settings, workers, exit_when_idle=True)
        wall = time.monotonic() - started
        states, why, failed_other = asyncio.run(outcome_counts(settings))
    finally:
        sim_stats = stop_sim(sim)
    first = min(s.first_claim for s in stats if s.first_claim is not None)
    last = max(s.last_record for s in stats if s.last_record is not None)
    seconds = last - first
    deferred = 0
    blocked = 0
    print(f"{'carrier':10} {'mails':>6} {'too fast':>9} {'blocks':>7} {'max conc.':>9}")
    for name, data in sim_stats.items():
        totals = data["totals"]  # type: ignore[index]
        too_fast = sum(totals["violations"].values())
        deferred += too_fast
        blocked += totals["blocks"]
        conc = max((s["max_concurrent"] for s in data["sources"].values()), default=0)  # type: ignore[index]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(totals["violations"].items()))
        print(f"{name:10} {totals['accepted']:>6} {too_fast:>9} {totals['blocks']:>7} {conc:>9}"
              f"  {kinds}")
    efficiency = ideal / seconds if seconds else 0.0
    print(f"workers {workers}, egress addresses {args.ips}")
    print(f"outcomes        {states}")
    for line in why:
        print(f"  not delivered: {line}")
    print(f"time            {seconds:.1f} s (whole run {wall:.1f} s)")
    print(f"ideal           {ideal:.1f} s (the simulator's rate limits, {args.ips} addresses)")
    print(f"efficiency      {efficiency:.3f}")
    print(f"violations      {deferred}, blocks {blocked}, "
          f"failed other than unknown users {failed_other}")
    print(json.dumps({
        "messages": args.messages, "seconds": round(seconds, 2), "ideal_seconds": round(ideal, 2),
        "efficiency": round(efficiency, 3), "deferred": deferred, "blocked": blocked,
        "failed_other": failed_other, "seed": seed,
    }))


if __name__ == "__main__":
    main()
