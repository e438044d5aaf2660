"""PostgreSQL failover under a running broadcast: a streaming replica promoted mid-delivery.

    python bench/failover.py [--messages 5000] [--promote-after 2] [--workers 1]

Uses the embedded server's PostgreSQL binaries (pgserver ships them; ``[backup] pg_bin_dir``
style: ``--pg-bin DIR`` overrides). In a temporary directory it

1. starts a primary (``initdb``, ``pg_ctl start``) on 127.0.0.1, creates the ``mamoru``
   database and makes a streaming replica of it with ``pg_basebackup -R -X stream`` (``-R``
   writes ``standby.signal`` and ``primary_conninfo``), started on a second port;
2. runs ``mamoru init`` and ``mamoru send`` (N personal, DKIM-signed mails) against the
   two-host URL ``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/mamoru?target_session_attrs=
   read-write`` (asyncpg takes several hosts and that attribute: it connects to the first host
   that answers and is not read-only), then ``mamoru serve --exit-when-idle`` with the same URL,
   sending to a counting SMTP sink in a process of its own;
3. once a third has arrived, stops the primary hard (``pg_ctl stop -m immediate``: every
   backend dies at once, as on a crash), waits ``--promote-after`` seconds (the operator) and
   promotes the replica (``pg_ctl promote``);
4. waits for serve to finish and measures: seconds from the promotion (and from the crash)
   until the sink receives mail again, lost (recipients of the accepted broadcast the sink
   never got), duplicates (recipients it got twice), the deliveries' states on the new primary.

Prints the figures and, last, one JSON line. Exits 1 when something was lost or serve did not
finish.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
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


_T0 = time.monotonic()


def note(what: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {what}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the counting sink (its own process) ------------------------------------------------------

def _sink_main(port: int, delay: float, conn: Any) -> None:
    import uvloop
    from aiosmtpd.smtp import SMTP

    counts: Counter[str] = Counter()
    lock = threading.Lock()

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if delay:
                await asyncio.sleep(delay)
            with lock:
                for rcpt in envelope.rcpt_tos:
                    counts[rcpt.lower()] += 1
            return "250 2.0.0 Ok"

    def answer() -> None:
        while True:
            ask = conn.recv()
            if ask == "stop":
                return
            with lock:
                conn.send(sum(counts.values()) if ask == "total" else dict(counts))

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
    """Counts every mail by recipient; asked over a pipe (``total``, ``counts``)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_sink_main, args=(self.port, delay, child), daemon=True)

    def __enter__(self) -> CountingSink:
        self._proc.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise SystemExit("the sink did not start")
        return self

    def total(self) -> int:
        self._conn.send("total")
        return int(self._conn.recv())

    def counts(self) -> Counter[str]:
        self._conn.send("counts")
        return Counter(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


# --- the two PostgreSQL servers ------------------------------------------------------------------

def pg_bin(given: str) -> Path:
    if given:
        return Path(given)
    from engine.platform.pg_tools import embedded_bin_dir

    found = embedded_bin_dir()
    if found is None or not (found / "pg_basebackup").exists():
        raise SystemExit("pg_basebackup not found: install pgserver or give --pg-bin DIR")
    return found


class Cluster:
    """A primary and its streaming replica, each a real postmaster on 127.0.0.1."""

    def __init__(self, bindir: Path, work: Path) -> None:
        self.bin = bindir
        self.work = work / "pg"
        self.work.mkdir()
        self.primary = self.work / "db1"
        self.replica = self.work / "db2"
        self.p1, self.p2 = free_port(), free_port()
        # PostgreSQL refuses to run as root: as root, run it as pgserver's own system user
        # (the one the embedded server uses there).
        self.user: str | None = None
        if os.geteuid() == 0:
            import pwd

            from pgserver.utils import ensure_user_exists

            self.user = "pgserver"
            entry = ensure_user_exists(self.user) or pwd.getpwnam(self.user)
            os.chown(self.work, entry.pw_uid, entry.pw_gid)
            work.chmod(0o755)

    def _run(self, tool: str, *args: str | Path, timeout: float = 120) -> None:
        done = subprocess.run([str(self.bin / tool), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, check=False, user=self.user,
                              cwd=self.work)
        if done.returncode != 0:
            raise SystemExit(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _start(self, data: Path, port: int) -> None:
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {self.work}"
        self._run("pg_ctl", "-D", data, "-l", data.parent / f"{data.name}.log", "-o", opts,
                  "-w", "-t", "60", "start")

    def start(self) -> None:
        # trust on loopback (initdb's pg_hba.conf also lets local replication connections in).
        self._run("initdb", "-D", self.primary, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")
        self._start(self.primary, self.p1)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres", "mamoru")
        # The replica, as docs/operation.md section 17 says (-R: standby.signal and the
        # primary's address; -X stream: the WAL written meanwhile comes along; -c fast: a
        # checkpoint at once, not one spread over minutes).
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres",
                  "-D", self.replica, "-R", "-X", "stream", "-c", "fast", timeout=300)
        self._start(self.replica, self.p2)

    @property
    def url(self) -> str:
        return (f"postgresql://postgres@127.0.0.1:{self.p1},127.0.0.1:{self.p2}/mamoru"
                f"?target_session_attrs=read-write")

    def crash_primary(self) -> None:
        self._run("pg_ctl", "-D", self.primary, "-m", "immediate", "stop")

    def promote_replica(self) -> None:
        self._run("pg_ctl", "-D", self.replica, "-w", "-t", "60", "promote")

    def stop(self) -> None:
        for data in (self.primary, self.replica):
            if (data / "postmaster.pid").exists():
                subprocess.run([str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                "stop"], capture_output=True, timeout=60, check=False,
                               user=self.user, cwd=self.work)


# --- mamoru --------------------------------------------------------------------------------------

def config(work: Path, db_url: str, sink: int, key: Path, concurrency: int) -> Path:
    keys = work / "keys"
    cfg = work / "mamoru.toml"
    cfg.write_text(f"""
[database]
url = "{db_url}"
pool_min = 1
pool_max = 6
connect_timeout = "5s"

[host]
name = "failover"

[delivery]
concurrency = {concurrency}

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


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}


def mamoru(*args: str | Path, timeout: float = 600) -> str:
    done = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mamoru {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def serve(cfg: Path, workers: int) -> subprocess.Popen[bytes]:
    log = (cfg.parent / "serve.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", str(workers),
         "--exit-when-idle"],
        cwd=ROOT, env=_env(), stdout=log, stderr=log, start_new_session=True,
    )


def recipients(n: int) -> list[str]:
    return [f"fo{i}@{CARRIERS[i % len(CARRIERS)]}" for i in range(n)]


async def run(args: argparse.Namespace, cluster: Cluster, work: Path) -> dict[str, Any]:
    from engine.message.dkim import generate_key

    key, _ = generate_key("city.example.jp", "bench", work / "dkim")
    n = args.messages
    out: dict[str, Any] = {"messages": n, "workers": args.workers,
                           "promote_after_seconds": args.promote_after}
    with CountingSink(args.sink_delay) as sink:
        cfg = config(work, cluster.url, sink.port, key, args.concurrency)
        mamoru("init", "-c", cfg, timeout=120)
        note("mamoru init done")
        to = work / "to.txt"
        to.write_text("".join(f"{r}\n" for r in recipients(n)))
        body = work / "body.txt"
        body.write_text(BODY, encoding="utf-8")
        mamoru("send", "-c", cfg, "--sender", SENDER, "--subject", "臨時休校のお知らせ",
               "--body-file", body, "--to-file", to, "--priority", "emergency")
        note(f"broadcast of {n} accepted")
        proc = serve(cfg, args.workers)
        try:
            t0 = time.monotonic()
            while sink.total() < max(1, n // 3):
                if proc.poll() is not None:
                    raise SystemExit("serve ended before the crash (see serve.log)")
                if time.monotonic() - t0 > args.timeout:
                    raise SystemExit("nothing arrived in time")
                await asyncio.sleep(0.02)
            cluster.crash_primary()
            note("primary stopped (immediate)")
            t_crash = time.monotonic()
            at_crash = sink.total()
            out["received_before_crash"] = at_crash
            await asyncio.sleep(args.promote_after)
            at_promote = sink.total()
            out["received_between_crash_and_promotion"] = at_promote - at_crash
            cluster.promote_replica()
            note("replica promoted")
            t_promote = time.monotonic()
            resumed: float | None = None
            while True:
                if resumed is None and sink.total() > at_promote:
                    resumed = time.monotonic()
                code = proc.poll()
                if code is not None:
                    break
                if time.monotonic() - t_promote > args.timeout:
                    break
                await asyncio.sleep(0.02)
            t_end = time.monotonic()
            out["serve_finished"] = proc.poll() == 0
            out["seconds_from_promotion_to_resumed"] = (
                None if resumed is None else round(resumed - t_promote, 2))
            out["seconds_from_crash_to_resumed"] = (
                None if resumed is None else round(resumed - t_crash, 2))
            out["seconds_from_promotion_to_done"] = round(t_end - t_promote, 2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        got_per = sink.counts()
        note("serve finished")
    wanted = set(recipients(n))
    out["lost"] = len(wanted - set(got_per))
    out["duplicates"] = sum(1 for r, c in got_per.items() if c > 1)
    db = await asyncpg.connect(cluster.url, timeout=10)
    try:
        rows = await db.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state "
                              "ORDER BY state")
        out["states_on_new_primary"] = {r["state"]: int(r["n"]) for r in rows}
    finally:
        await db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--promote-after", type=float, default=2.0,
                        help="seconds between the crash and the promotion")
    parser.add_argument("--workers", type=int, default=1, help="runner processes")
    parser.add_argument("--concurrency", type=int, default=500,
                        help="[delivery] concurrency: mails in flight per runner")
    parser.add_argument("--sink-delay", type=float, default=0.0,
                        help="seconds the sink takes to answer each mail (a slow carrier)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up waiting for delivery after this many seconds")
    parser.add_argument("--pg-bin", default="", help="PostgreSQL's bin folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    bindir = pg_bin(args.pg_bin)
    tmp = Path(tempfile.mkdtemp(prefix="mamoru-failover-"))
    cluster = Cluster(bindir, tmp)
    try:
        cluster.start()
        note("primary and replica running")
        result = asyncio.run(run(args, cluster, tmp))
    finally:
        cluster.stop()
        if args.keep:
            print(f"work folder kept: {tmp}", file=sys.stderr)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    print(f"crash after {result['received_before_crash']} of {result['messages']} mails, "
          f"promotion {args.promote_after} s later; delivery resumed "
          f"{result['seconds_from_promotion_to_resumed']} s after the promotion; lost "
          f"{result['lost']}, duplicates {result['duplicates']}; states on the new primary "
          f"{result['states_on_new_primary']}", flush=True)
    print(json.dumps(result, ensure_ascii=False))
    if result["lost"] or not result["serve_finished"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
