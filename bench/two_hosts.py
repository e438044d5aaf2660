"""Two `mamoru serve` hosts on one PostgreSQL: time with one host and with two, and a kill.

    python bench/two_hosts.py [--messages 30000] [--workers 1] [--database-url URL]

Starts (unless ``--database-url``) an embedded PostgreSQL, ``mamoru init`` on it, and a
counting SMTP sink in a process of its own (uvloop + aiosmtpd; it counts every mail by the
delivery id in its Message-ID). Every mail is personal (an unsubscribe link of its own in
List-Unsubscribe and in the text) and DKIM-signed on its own. Host A sends from 127.0.0.2,
host B from 127.0.0.3, each a real ``mamoru serve --workers W --exit-when-idle`` subprocess
with its own configuration file, name and egress address; only the database and the key files
are shared.

1. one host: a broadcast of N, host A alone;
2. two hosts: another broadcast of N, A and B together;
3. kill: a third broadcast of N, A and B together, A killed with SIGKILL (its whole process
   group) once a third has arrived; B finishes alone. Lost = deliveries the sink never got;
   duplicates = deliveries it got twice, and how many of those were NOT held by A at the kill
   (must be 0).

Times count from the broadcast's first attempt to its last recorded outcome (database clock).
On one machine the two hosts share its cores: two hosts only scale where each has its own.
Prints the figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
SENDER = "kyouiku@city.example.jp"
CARRIERS = ("docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp", "gmail.com")
BODY = ("保護者の皆様\n\n台風の接近に伴い、本日は午前11時で授業を打ち切り、下校させます。\n"
        "お迎えが必要な場合は学校までご連絡ください。\n\n") * 4 + "〇〇市教育委員会\n"


# --- the counting sink (its own process) ------------------------------------------------------

def _sink_main(port: int, conn: Any) -> None:
    import uvloop
    from aiosmtpd.smtp import SMTP

    counts: Counter[str] = Counter()
    lock = threading.Lock()

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = bytes(envelope.content or b"")
            head = data.split(b"\r\n\r\n", 1)[0]
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    with lock:
                        counts[line.split(b":", 1)[1].strip().decode()] += 1
                    break
            return "250 2.0.0 Ok"

    def answer() -> None:
        while True:
            if conn.recv() == "stop":
                return
            with lock:
                conn.send(dict(counts))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Count(), hostname="sink", enable_SMTPUTF8=True),
            "127.0.0.1", port, backlog=1000,
        )
        conn.send("ready")
        await loop.run_in_executor(None, answer)
        server.close()

    uvloop.run(main())


class CountingSink:
    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_sink_main, args=(self.port, child), daemon=True)

    def __enter__(self) -> CountingSink:
        self._proc.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise SystemExit("the sink did not start")
        return self

    def counts(self, broadcast_id: int) -> Counter[int]:
        """Mails received per delivery id of one broadcast."""
        self._conn.send("counts")
        out: Counter[int] = Counter()
        prefix = f"mamoru.{broadcast_id}."
        for mid, n in self._conn.recv().items():
            local = mid.strip("<>").partition("@")[0]
            if local.startswith(prefix):
                out[int(local.split(".")[2])] += n
        return out

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


# --- the hosts ---------------------------------------------------------------------------------

def host_config(work: Path, name: str, egress: str, db_url: str, sink: int, key: Path) -> Path:
    keys = work / "keys"
    cfg = work / f"{name}.toml"
    cfg.write_text(f"""
[database]
url = "{db_url}"
pool_min = 1
pool_max = 6

[host]
name = "{name}"

[log]
requests = false

[routing.transport]
"*" = "127.0.0.1:{sink}"

[metrics]
listen = ""

[http]
listen = ""
public_url = "https://mail.city.example.jp"

[inbound]
listen = ""

[shaping]
enabled = false

[[egress.sources]]
address = "{egress}"
helo = "{name}.city.example.jp"

[[dkim.keys]]
domain = "city.example.jp"
selector = "bench"
private_key = "{key}"

[people]
key_file = "{keys / 'people.key'}"
link_key_file = "{keys / 'link.key'}"

[staff]
audit_key_file = "{keys / 'audit.key'}"
audit_checkpoints = "{keys / 'audit.checkpoints'}"
""", encoding="utf-8")
    return cfg


def mamoru(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    done = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(f"mamoru {args[0]} failed: {done.stderr.strip()}")
    return done


def serve(cfg: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    log = (cfg.parent / f"{cfg.stem}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", str(workers),
         "--exit-when-idle"],
        cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
    )


def send(cfg: Path, work: Path, n: int, tag: str) -> int:
    to = work / f"to-{tag}.txt"
    to.write_text("".join(f"{tag}{i}@{CARRIERS[i % len(CARRIERS)]}\n" for i in range(n)))
    body = work / "body.txt"
    body.write_text(BODY, encoding="utf-8")
    done = mamoru("send", "-c", cfg, "--sender", SENDER, "--subject", "臨時休校のお知らせ",
                  "--body-file", body, "--to-file", to, "--priority", "emergency", timeout=600)
    return int(done.stdout.strip().split()[-1])


async def seconds_of(db: asyncpg.Connection, broadcast_id: int) -> float:
    row = await db.fetchrow(
        "SELECT min(a.attempted_at) AS first, max(d.finished_at) AS last "
        "FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id "
        "WHERE d.broadcast_id = $1", broadcast_id)
    return float((row["last"] - row["first"]).total_seconds())


async def counts_by_state(db: asyncpg.Connection, broadcast_id: int) -> dict[str, int]:
    rows = await db.fetch("SELECT state, count(*) AS n FROM deliveries WHERE broadcast_id = $1 "
                          "GROUP BY state", broadcast_id)
    return {r["state"]: int(r["n"]) for r in rows}


def wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
        if p.returncode != 0:
            raise SystemExit(f"serve exited with {p.returncode} (see the .log files)")


async def run(args: argparse.Namespace, db_url: str, work: Path) -> dict[str, Any]:
    from engine.message.dkim import generate_key

    key, _ = generate_key("city.example.jp", "bench", work / "dkim")
    n, w = args.messages, args.workers
    out: dict[str, Any] = {"messages": n, "workers_per_host": w}
    with CountingSink() as sink:
        a = host_config(work, "host-a", "127.0.0.2", db_url, sink.port, key)
        b = host_config(work, "host-b", "127.0.0.3", db_url, sink.port, key)
        mamoru("init", "-c", a, timeout=120)
        db = await asyncpg.connect(db_url)
        try:
            one = send(a, work, n, "one")
            wait_all([serve(a, w)], timeout=3600)
            out["one_host_seconds"] = round(await seconds_of(db, one), 2)
            print(f"one host : {n} mails in {out['one_host_seconds']} s "
                  f"({n / out['one_host_seconds']:.0f}/s)", flush=True)

            two = send(a, work, n, "two")
            wait_all([serve(a, w), serve(b, w)], timeout=3600)
            out["two_hosts_seconds"] = round(await seconds_of(db, two), 2)
            per_host = await db.fetch(
                "SELECT split_part(a.runner, ':', 1) AS host, count(*) AS n "
                "FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = $1 AND a.outcome = 'delivered' GROUP BY 1 ORDER BY 1",
                two)
            out["two_hosts_split"] = {r["host"]: int(r["n"]) for r in per_host}
            print(f"two hosts: {n} mails in {out['two_hosts_seconds']} s "
                  f"({n / out['two_hosts_seconds']:.0f}/s), split {out['two_hosts_split']}",
                  flush=True)

            kill = send(a, work, n, "kill")
            pa, pb = serve(a, w), serve(b, w)
            while sum(sink.counts(kill).values()) < n // 3:
                if pa.poll() is not None:
                    raise SystemExit("host A ended before the kill")
                await asyncio.sleep(0.05)
            os.killpg(pa.pid, signal.SIGKILL)
            pa.wait(10)
            held = {r["id"] for r in await db.fetch(
                "SELECT id FROM deliveries WHERE broadcast_id = $1 AND state = 'sending' "
                "AND lease_owner LIKE 'host-a:%'", kill)}
            t_kill = time.monotonic()
            wait_all([pb], timeout=3600)
            got = sink.counts(kill)
            ids = {r["id"] for r in await db.fetch(
                "SELECT id FROM deliveries WHERE broadcast_id = $1", kill)}
            twice = {d for d, c in got.items() if c > 1}
            out["kill"] = {
                "held_by_killed_host": len(held),
                "lost": len(ids - set(got)),
                "duplicates": len(twice),
                "duplicates_not_held_by_killed_host": len(twice - held),
                "states": await counts_by_state(db, kill),
                "seconds_from_kill_to_done": round(time.monotonic() - t_kill, 1),
            }
            print(f"kill     : host A held {len(held)} at the kill; lost "
                  f"{out['kill']['lost']}, duplicates {len(twice)} "
                  f"(outside what A held: {len(twice - held)}); states "
                  f"{out['kill']['states']}; B finished {out['kill']['seconds_from_kill_to_done']}"
                  f" s after the kill", flush=True)
        finally:
            await db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=1, help="runner processes per host")
    parser.add_argument("--database-url", default="", help="an empty database to use")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mamoru-two-hosts-") as tmp:
        work = Path(tmp)
        server = None
        db_url = args.database_url
        if not db_url:
            import pgserver

            server = pgserver.get_server(Path(f"/tmp/mamoru-2h-{os.getpid()}"),
                                         cleanup_mode="delete")
            db_url = str(server.get_uri())
        try:
            result = asyncio.run(run(args, db_url, work))
        finally:
            if server is not None:
                with contextlib.suppress(Exception):
                    server.cleanup()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
