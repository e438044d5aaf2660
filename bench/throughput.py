"""Throughput benchmark: N one-recipient mails, DKIM-signed, from the queue to an SMTP sink.

    python bench/throughput.py --messages 30000 [--sink HOST:PORT] [--workers N]
                               [--database-url URL] [--no-dkim] [--aiosmtpd-sink]

Enqueues one broadcast of N recipients (about 2 KB of Japanese text each, as a school's
emergency mail is), runs ``--workers`` runner processes (default: one per core) until the queue
is drained, and checks every delivery was recorded as delivered. Without ``--sink`` it starts
its own sink: Postfix's ``smtp-sink`` when installed, else an aiosmtpd sink.

Time counts from the first claim to the last recorded outcome. Prints the figures and, last,
one JSON line ``{"messages":N,"delivered":N,"seconds":S,"per_second":R,...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink import start_sink  # noqa: E402

from engine.platform.config import Settings, load_settings  # noqa: E402
from engine.platform.sealing import Sealer, new_key_text  # noqa: E402

BENCH_PEOPLE_KEY = new_key_text()
from engine.platform.db import create_pool  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402

SENDER = "kyouiku@city.example.jp"
CARRIERS = ("docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp", "gmail.com")
BODY = (
    "保護者の皆様\n\n"
    "台風第21号の接近に伴い、本日は午前11時で授業を打ち切り、下校させます。\n"
    "お迎えが必要な場合は学校までご連絡ください。\n"
    "今後の情報は、このメールと学校のホームページでお知らせします。\n\n"
) * 5 + "〇〇市教育委員会\n"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_settings(
    db_url: str, sink: str, key_dir: Path | None, per_recipient: bool = False
) -> Settings:
    base = load_settings(None, environ={})
    # --no-dkim: the engine's cost without signing (the sink checks no signature).
    dkim: dict[str, object] = {"allow_unsigned": True}
    if key_dir is not None:
        from engine.message.dkim import generate_key

        path, _ = generate_key("city.example.jp", "bench", key_dir)
        dkim = {"keys": [{"domain": "city.example.jp", "selector": "bench",
                          "private_key": str(path)}],
                "sign_per_recipient": per_recipient}
    return replace(
        base,
        database=replace(base.database, url=db_url, pool_min=1, pool_max=4),
        routing=replace(base.routing, transport={"*": sink}),
        metrics=replace(base.metrics, listen=""),
        # The sink is ours and unlimited: this measures the engine, not a carrier's limits.
        shaping={"enabled": False},
        dkim=dkim,
        # Recipients are stored sealed: a key of the run's own (never the working tree's).
        people=replace(base.people, key=BENCH_PEOPLE_KEY),
    )


async def enqueue(settings: Settings, n: int) -> None:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        from engine.platform.clock import SystemClock

        recipients = [f"hogosha{i}@{CARRIERS[i % len(CARRIERS)]}" for i in range(n)]
        await Queue(pool, Sealer.from_key(settings.people.key, "")).enqueue(
            NewBroadcast(SENDER, "【緊急】台風接近に伴う下校について", BODY, recipients,
                         Priority.EMERGENCY),
            SystemClock().now(),
            settings.queue.max_age,
        )
    finally:
        await pool.close()


async def delivered_count(settings: Settings) -> int:
    pool = await create_pool(settings.database, settings.database.url)
    try:
        return int(await pool.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'"))
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> dict[str, object]:
    from engine.delivery.workers import default_worker_count, run_workers

    tmp = Path(tempfile.mkdtemp(prefix="mamoru-bench-", dir="/tmp"))
    db_url = args.database_url
    if not db_url:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        db_url = pgserver.get_server(tmp / "pg", cleanup_mode="delete").get_uri()
    sink_proc = None
    sink = args.sink
    if not sink:
        port = free_port()
        sink_proc = start_sink("127.0.0.1", port, prefer_postfix=not args.aiosmtpd_sink)
        sink = f"127.0.0.1:{port}"
    try:
        settings = bench_settings(
            db_url, sink, None if args.no_dkim else tmp, args.sign_per_recipient
        )
        asyncio.run(enqueue(settings, args.messages))
        workers = args.workers or default_worker_count()
        started = time.monotonic()
        stats = run_workers(settings, workers, exit_when_idle=True)
        wall = time.monotonic() - started
        delivered = asyncio.run(delivered_count(settings))
    finally:
        if sink_proc is not None:
            sink_proc.terminate()
            sink_proc.wait(10)
    first = min(s.first_claim for s in stats if s.first_claim is not None)
    last = max(s.last_record for s in stats if s.last_record is not None)
    seconds = last - first
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"workers          {workers}")
    print(f"sink             {sink} ({'own' if sink_proc else 'given'})")
    mode = "each mail signed alone" if args.sign_per_recipient else "signed once per broadcast"
    print(f"dkim             {'off' if args.no_dkim else 'RSA-2048, ' + mode}")
    print(f"delivered        {delivered} of {args.messages}")
    print(f"claim→recorded   {seconds:.2f} s  ({args.messages / seconds:.0f} mails/s)")
    print(f"whole run        {wall:.2f} s (with process start-up)")
    print(f"peak worker RSS  {peak_mb:.0f} MB")
    return {
        "messages": args.messages,
        "delivered": delivered,
        "seconds": round(seconds, 3),
        "per_second": round(args.messages / seconds, 1),
        "workers": workers,
        "dkim": "off" if args.no_dkim else (
            "per-recipient" if args.sign_per_recipient else "per-broadcast"
        ),
        "peak_worker_rss_mb": round(peak_mb, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--sink", default="", help="HOST:PORT of a running sink")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--no-dkim", action="store_true")
    parser.add_argument("--sign-per-recipient", action="store_true",
                        help="sign every mail alone (To and Message-ID included)")
    parser.add_argument("--aiosmtpd-sink", action="store_true",
                        help="use the aiosmtpd sink even when smtp-sink is installed")
    print(json.dumps(run(parser.parse_args())))
