"""Read confirmation at scale: send time with and without it, and 30,000 read-link clicks
against the real HTTP server on loopback.

    python bench/twoway_clicks.py [--accounts 15000] [--concurrency 32] [--client wrk|httpx]
                                  [--clients 1] [--time-limit 120] [--workers N] [--skip-send]

Imports ACCOUNTS children with two confirmed contacts each (bench/people_import.py's CSV:
30,000 addresses by default) into an embedded PostgreSQL, then:

1. sends one broadcast to the whole board without read confirmation and one with it (fan-out
   through ``send_broadcast``, the one with confirmation given ``asks=Asks(read=...)`` as the
   staff API does; both link their deliveries to contacts and accounts inside the fan-out),
   each drained by the runner processes to an SMTP sink as bench/throughput.py runs them;
   prints both send times, and what linking alone costs (the links removed and made again);
2. serves the pages application (``admin_api.app.create_app`` under uvicorn through
   ``admin_api.server.HttpServer``, as ``mamoru serve`` does) in its own process on
   127.0.0.1, and opens every delivery's personal page ``GET /m/{token}`` once (which records
   the read: the whole page, rate limit, template and all) with CONCURRENCY keep-alive
   connections from wrk (default; bench/clicks.lua, installed with apt-get if missing) or from
   httpx (CLIENTS processes); prints clicks/s, p50/p99 latency, the CPU per click of the HTTP
   process and of the client, and whether every click was recorded. The client shares the two
   cores with the server and PostgreSQL, as phones would not: httpx spends more CPU per click
   than the server does, so the default is wrk, whose cost is a small fraction of it.

Traffic stays on loopback; the click loop is bounded by its count and by ``--time-limit``.
Prints, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from people_import import import_board  # noqa: E402
from sink import start_sink  # noqa: E402
from throughput import BODY, bench_settings, free_port  # noqa: E402

from admin_api.app import create_app  # noqa: E402
from admin_api.server import HttpServer  # noqa: E402
from admin_api.site import open_site  # noqa: E402
from engine.message.links import PAGE, LinkSigner  # noqa: E402
from engine.people import Audience, Category, People  # noqa: E402
from engine.platform.config import Settings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.twoway import (
    link_deliveries,  # noqa: E402
    send_broadcast,  # noqa: E402
)
from engine.twoway.asks import Asks, ReadPolicy  # noqa: E402


async def _secret(settings: Settings) -> bytes:
    """The deployment's link secret, as ``mamoru serve`` and the runners read it."""
    from engine.delivery.context import Engine

    engine = await Engine.open(settings)
    try:
        return await engine.verp_secret()
    finally:
        await engine.close()


async def populate(settings: Settings, accounts: int, schools: int) -> int:
    """Import the children and their contacts; return the board's id."""
    pool = await create_pool(settings.database, settings.database.url)
    try:
        people = await People.open(pool, settings.people)
        return (await import_board(people, accounts, schools)).id
    finally:
        await pool.close()


async def fan_out(settings: Settings, board: int, read: bool) -> tuple[int, int, float, float]:
    """(broadcast, recipients, fan-out seconds, linking seconds) of one broadcast to the
    whole board."""
    pool = await create_pool(settings.database, settings.database.url)
    try:
        people = await People.open(pool, settings.people)
        asks = Asks(read=ReadPolicy(timedelta(hours=2), 2)) if read else None
        message = NewBroadcast(
            "kyouiku@city.example.jp", "【確認】台風接近に伴う下校について", BODY, [],
            Priority.EMERGENCY,
        )
        t0 = time.perf_counter()
        fan = await send_broadcast(people, Queue(pool, people.sealer), message,
                                   Audience(boards=(board,)), Category.NOTICE,
                                   settings.queue.max_age, asks=asks)
        t1 = time.perf_counter()
        return fan.broadcast_id, fan.recipients, t1 - t0, await relink(pool, people,
                                                                       fan.broadcast_id)
    finally:
        await pool.close()


async def relink(pool: Any, people: People, broadcast_id: int) -> float:
    """Seconds ``link_deliveries`` takes for the broadcast on its own (part of every fan-out's
    transaction): its links are removed and made again, in one transaction like the fan-out's."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM delivery_accounts WHERE broadcast_id = $1", broadcast_id)
        await conn.execute("DELETE FROM delivery_contacts WHERE broadcast_id = $1", broadcast_id)
        t0 = time.perf_counter()
        await link_deliveries(conn, people, broadcast_id)
        return time.perf_counter() - t0


def drain(settings: Settings, workers: int) -> float:
    """Seconds from the first claim to the last recorded outcome of what is queued."""
    from engine.delivery.workers import run_workers

    stats = run_workers(settings, workers, exit_when_idle=True)
    first = min(s.first_claim for s in stats if s.first_claim is not None)
    last = max(s.last_record for s in stats if s.last_record is not None)
    return last - first


def serve_pages(settings: Settings, listen: str, ready: Any, stop: Any, cpu: Any) -> None:
    """The pages application on ``listen`` until ``stop`` is set (a child process); leaves
    the CPU seconds it used while serving in ``cpu``."""

    async def run() -> None:
        pool = await create_pool(settings.database, settings.database.url)
        people = await People.open(pool, settings.people)
        site = await open_site(settings, people, await _secret(settings))
        server = HttpServer(create_app(site), listen)
        await server.start()
        ready.set()
        started = time.process_time()
        await asyncio.to_thread(stop.wait)
        cpu.value = time.process_time() - started
        await server.stop()
        await pool.close()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


@dataclass
class Clicks:
    answered: int  # 200 with the read recorded
    failed: int  # any other answer
    unmade: int  # not made within the time limit
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_ms: float  # the load generator's CPU per click


def click_wrk(base: str, tokens: list[str], path: str, args: argparse.Namespace) -> Clicks:
    """One click per token from wrk (bench/clicks.lua): a C client whose own CPU per click is
    small beside the server's, so that the rate measured is the server's on these two cores.
    Timed from wrk's start to the last thread's "finished" line; wrk is then interrupted."""
    ensure_wrk()
    threads = max(1, args.clients)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir="/tmp") as paths:
        paths.write("".join(path.format(token=t) + "\n" for t in tokens))
        paths.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["wrk", "-t", str(threads), "-c", str(args.concurrency),
             "-d", f"{args.time_limit:.0f}s", "--timeout", "10s",
             "-s", str(Path(__file__).with_name("clicks.lua")), base, "--",
             paths.name, str(threads)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None
        finished = 0
        seconds = args.time_limit
        result: dict[str, Any] | None = None
        for line in proc.stdout:  # ends with wrk, at the latest after --time-limit
            if line.strip() == "finished":
                finished += 1
                if finished == threads:
                    seconds = time.perf_counter() - t0
                    proc.send_signal(signal.SIGINT)
            elif line.startswith("{"):
                result = json.loads(line)
        proc.wait(60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode or result is None:
        detail = proc.stderr.read() if proc.stderr else ""
        raise SystemExit(f"wrk failed ({proc.returncode}): {detail}")
    made = result["clicks"] + result["failed"]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if result["socket_errors"]:
        print(f"wrk socket errors {result['socket_errors']} (connect, read, write, timeout)")
    return Clicks(result["clicks"], result["failed"], len(tokens) - made, seconds,
                  result["p50_ms"], result["p99_ms"], cpu * 1000 / made if made else float("nan"))


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("installing wrk with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


async def click_httpx(
    base: str, path: str, tokens: list[str], concurrency: int, time_limit: float
) -> tuple[list[float], int, int, float, float]:
    """(latencies of successful clicks, failures, clicks not made in the time limit,
    seconds, client CPU seconds) for one click per token."""
    import httpx

    latencies: list[float] = []
    failures = 0
    pending = iter(tokens)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    deadline = t0 + time_limit
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def clicker() -> None:
            nonlocal failures
            for token in pending:
                t = time.perf_counter()
                if t > deadline:
                    return
                r = await client.get(path.format(token=token))
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    if not failures:
                        print(f"first failed click: {r.status_code} {r.text[:200]!r}")
                    failures += 1

        await asyncio.gather(*(clicker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    made = len(latencies) + failures
    return latencies, failures, len(tokens) - made, seconds, time.process_time() - cpu0


def _client(base: str, path: str, tokens: list[str], concurrency: int, time_limit: float,
            out: Any) -> None:
    """One load-generating process: its share of the clicks, results put on ``out``."""
    out.put(asyncio.run(click_httpx(base, path, tokens, concurrency, time_limit)))


def clients(ctx: Any, base: str, args: argparse.Namespace, tokens: list[str]) -> Clicks:
    """The clicks from wrk (default) or from ``args.clients`` httpx processes (httpx costs
    more CPU per request than the server, so on two cores it measures itself);
    ``args.concurrency`` connections in all."""
    if args.client == "wrk":
        return click_wrk(base, tokens, args.path, args)
    out = ctx.Queue()
    per = max(1, args.concurrency // args.clients)
    procs = [ctx.Process(target=_client, args=(base, args.path, tokens[i::args.clients], per,
                                               args.time_limit, out))
             for i in range(args.clients)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=args.time_limit + 60) for _ in procs]
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join(10)
    latencies = sorted(x for r in results for x in r[0])
    failures = sum(r[1] for r in results)
    made = len(latencies) + failures
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    cpu = sum(r[4] for r in results)
    return Clicks(len(latencies), failures, sum(r[2] for r in results), seconds, p50, p99,
                  cpu * 1000 / made if made else float("nan"))


async def tokens_and_reads(settings: Settings, broadcast_id: int) -> list[str]:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        signer = LinkSigner(await _secret(settings))
        ids = [r["id"] for r in await pool.fetch(
            "SELECT id FROM deliveries WHERE broadcast_id = $1 ORDER BY id", broadcast_id)]
        expires = int(time.time()) + 86400
        return [signer.token(PAGE, i, expires) for i in ids]
    finally:
        await pool.close()


async def recorded(settings: Settings, broadcast_id: int) -> int:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        return int(await pool.fetchval(
            "SELECT count(*) FROM delivery_reads WHERE broadcast_id = $1", broadcast_id))
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="mamoru-bench-", dir="/tmp"))
    try:
        return _run(args, tmp)
    finally:
        # The database is deleted by pgserver; the DKIM key and the rest go here.
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    from people_import import database_url

    from engine.delivery.workers import default_worker_count

    db_url = database_url(args.database_url)
    sink_port = free_port()
    sink_proc = start_sink("127.0.0.1", sink_port)
    out: dict[str, object] = {}
    try:
        base = bench_settings(db_url, f"127.0.0.1:{sink_port}", tmp)
        # A public_url, so that the mails of the broadcast with read confirmation carry their
        # personal page link (each mail then differs, as deployed).
        settings = replace(
            base, people=replace(base.people, key=new_key_text()),
            database=replace(base.database, pool_max=args.pool),
            http=replace(base.http, public_url="https://mail.example.jp"),
        )
        t0 = time.perf_counter()
        board = asyncio.run(populate(settings, args.accounts, args.schools))
        print(f"import           {args.accounts} children in {time.perf_counter() - t0:.1f} s")
        workers = args.workers or default_worker_count()
        read_id = 0
        # The second broadcast drains faster (warm caches, claimed rows nearby): --read-first
        # swaps the order to tell that from the cost of read confirmation.
        for read in ((True, False) if args.read_first else (False, True)):
            broadcast, n, fan, link = asyncio.run(fan_out(settings, board, read))
            read_id = broadcast if read else read_id
            label = "with read confirmation" if read else "plain"
            key = "read" if read else "plain"
            print(f"link_deliveries  {link:.2f} s of the fan-out ({label}; {n} deliveries)")
            out[f"link_{key}_seconds"] = round(link, 3)
            if args.skip_send:
                print(f"fan-out {label:>22}: {n} recipients {fan:.2f} s (send skipped)")
                asyncio.run(_mark_delivered(settings, broadcast))
                out[f"fanout_{key}_seconds"] = round(fan, 3)
                continue
            seconds = drain(settings, workers)
            print(f"send {label:>25}: {n} recipients, fan-out {fan:.2f} s, "
                  f"claim→recorded {seconds:.2f} s ({n / seconds:.0f} mails/s, {workers} "
                  "workers)")
            out.update({"recipients": n, f"fanout_{key}_seconds": round(fan, 3),
                        f"send_{key}_seconds": round(seconds, 3),
                        f"send_{key}_per_second": round(n / seconds, 1)})
    finally:
        sink_proc.terminate()
        sink_proc.wait(10)

    tokens = asyncio.run(tokens_and_reads(settings, read_id))
    ctx = multiprocessing.get_context("spawn")
    ready, stop, cpu = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
    listen = f"127.0.0.1:{free_port()}"
    server = ctx.Process(target=serve_pages, args=(settings, listen, ready, stop, cpu),
                         daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the HTTP server did not start")
        clicks = clients(ctx, f"http://{listen}", args, tokens)
    finally:
        stop.set()
        server.join(15)
        if server.is_alive():
            server.terminate()
    stored = asyncio.run(recorded(settings, read_id))
    made = clicks.answered + clicks.failed
    server_ms = cpu.value * 1000 / made if made else float("nan")
    print(f"clicks           {made} of {len(tokens)} in {clicks.seconds:.2f} s "
          f"({made / clicks.seconds:.0f}/s, {args.concurrency} connections, {args.client}); "
          f"p50 {clicks.p50_ms:.1f} ms, p99 {clicks.p99_ms:.1f} ms; {clicks.failed} failed; "
          f"{clicks.unmade} not made within {args.time_limit:.0f} s")
    print(f"server CPU       {server_ms:.2f} ms per click (HTTP process; PostgreSQL apart)")
    print(f"client CPU       {clicks.client_cpu_ms:.2f} ms per click ({args.client})")
    print(f"recorded         {stored} of {len(tokens)} reads "
          f"({'all' if stored == len(tokens) else 'NOT all'})")
    out.update({"clicks": made, "click_seconds": round(clicks.seconds, 3),
                "clicks_per_second": round(made / clicks.seconds, 1),
                "p50_ms": round(clicks.p50_ms, 2), "p99_ms": round(clicks.p99_ms, 2),
                "failed": clicks.failed, "not_made": clicks.unmade,
                "server_cpu_ms_per_click": round(server_ms, 3),
                "client_cpu_ms_per_click": round(clicks.client_cpu_ms, 3),
                "client": args.client, "recorded": stored, "concurrency": args.concurrency})
    return out


async def _mark_delivered(settings: Settings, broadcast_id: int) -> None:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        await pool.execute("UPDATE deliveries SET state = 'delivered', finished_at = now() "
                           "WHERE broadcast_id = $1", broadcast_id)
    finally:
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=15_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk",
                        help="load generator: wrk (installed with apt-get if missing) or httpx")
    parser.add_argument("--clients", type=int, default=1,
                        help="wrk threads, or httpx processes (connections shared among them)")
    parser.add_argument("--pool", type=int, default=8, help="database connections per process")
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--database-url", default="", help="an empty database (default: own)")
    parser.add_argument("--path", default="/m/{token}")
    parser.add_argument("--read-first", action="store_true",
                        help="send the broadcast with read confirmation first")
    parser.add_argument("--skip-send", action="store_true",
                        help="fan out only (mark delivered by hand), to measure the clicks")
    print(json.dumps(run(parser.parse_args())))
