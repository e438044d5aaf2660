"""Every script in bench/ runs at a tiny size, so a benchmark cannot rot unnoticed.

Not timed: each script is run as the operator runs it (a subprocess, from the repository
root), with its smallest arguments, bounded by a timeout, and must exit 0 with its JSON line
last (or, for the servers, answer and stop). Scripts that take ``--database-url`` get a fresh
empty database on the suite's server; the others start what they need themselves. A script
that needs a Debian package (Postfix, OpenDKIM) skips naming it; the tests never install one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import scratch_database

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
TIMEOUT = 150.0

Figures = dict[str, Any]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    check: Callable[[Any], bool]
    database: bool = False
    needs: tuple[str, ...] = field(default=())  # Debian packages, by an executable of each


def _json_list_ok(figures: Any) -> bool:
    return isinstance(figures, list) and all(r["lost"] == 0 for r in figures)


CASES: dict[str, Case] = {
    "fanout.py": Case(("--recipients", "50", "--rounds", "1"),
                      lambda f: f["recipients"] == 50, database=True),
    "attachments.py": Case(
        ("--recipients", "20", "--files", "1", "--file-mb", "0.01", "--downloads", "2",
         "--download-mb", "0.01", "--concurrency", "2"),
        lambda f: f["recipients"] == 20, database=True),
    "audience_fanout.py": Case(("--accounts", "40", "--schools", "2", "--rounds", "1"),
                               lambda f: f["recipients"] == 80, database=True),
    "audit_chain.py": Case(("--entries", "5",), lambda f: f["entries"] == 5, database=True),
    "people_import.py": Case(("--accounts", "40", "--schools", "2"),
                             lambda f: f["contacts"] == 80, database=True),
    "reminders.py": Case(("--accounts", "40", "--schools", "2", "--read", "5"),
                         lambda f: f["recipients"] == 80 and f["reminded"] > 0, database=True),
    "twoway.py": Case(("--accounts", "40", "--schools", "2", "--clicks", "10",
                       "--concurrency", "2"), lambda f: f["clicks"] == 10, database=True),
    "throughput.py": Case(("--messages", "20", "--workers", "1"),
                          lambda f: f["delivered"] == 20, database=True),
    "dkim_sign.py": Case(("--messages", "5", "--dkimpy-messages", "2"),
                         lambda f: f["signatures"] == 5),
    "emergency.py": Case(("--bulk", "50", "--emergency", "5", "--ips", "1"),
                         lambda f: f["emergency"] == 5 and f["last_seconds"] is not None,
                         database=True),
    "shaping.py": Case(("--messages", "30", "--ips", "1", "--workers", "1"),
                       lambda f: f["messages"] == 30 and f["failed_other"] == 0, database=True),
    # One scenario: all of them run at a few hundred recipients in tests/delivery/test_faults.
    "faults.py": Case(("--recipients", "10", "--only", "writer"), _json_list_ok),
    "twoway_clicks.py": Case(
        ("--accounts", "10", "--schools", "1", "--client", "httpx", "--concurrency", "2",
         "--workers", "1", "--time-limit", "30"),
        lambda f: f["recorded"] == f["clicks"] == 20, database=True),
    "peer_postfix.py": Case(("--messages", "20", "--workers", "1"),
                            lambda f: f["messages"] == 20 and f["ratio"] > 0,
                            needs=("postfix",), database=True),
    "peer_postfix_dkim.py": Case(("--messages", "20", "--workers", "1"),
                                 lambda f: f["messages"] == 20 and f["ratio"] > 0,
                                 needs=("postfix", "opendkim")),
    # mamoru's side of the same script needs no package.
    "peer_postfix_dkim.py --skip-postfix": Case(
        ("--messages", "20", "--workers", "1", "--skip-postfix"),
        lambda f: f["messages"] == 20 and f["mamoru_seconds"] > 0
        and f["signatures_timed"] == 20),
    "bookkeeping.py": Case(("--messages", "30", "--rounds", "1"),
                           lambda f: f["messages"] == 30 and f["best"]["bookkeeping_us"] > 0
                           and f["best"]["rsa_us"] > 0, database=True),
    "smtp_floor.py": Case(("--messages", "30", "--connections", "2", "--rounds", "1"),
                          lambda f: f["two_turns"]["messages"] == 30
                          and f["one_turn"]["cpu_us_per_mail"] > 0
                          and f["mamoru_session"]["messages"] == 30),
    "fk_fanout.py": Case(("--accounts", "20", "--schools", "2", "--rounds", "1"),
                         lambda f: f["per-statement"]["fanout_median_seconds"] > 0,
                         database=True),
    "screens.py": Case(("--accounts", "40", "--schools", "2", "--recipients", "30",
                        "--audit", "5", "--suppressions", "5", "--rounds", "1"),
                       lambda f: f["dashboard"] > 0 and f["audit"] > 0, database=True),
    "two_hosts.py": Case(("--messages", "200", "--workers", "1"),
                         lambda f: f["kill"]["lost"] == 0
                         and f["kill"]["duplicates_not_held_by_killed_host"] == 0,
                         database=True),
    "scale.py": Case(
        ("--small", "20", "--large", "40", "--history", "200", "--bulk", "60",
         "--emergency", "5", "--workers", "1", "--pages", "3"),
        lambda f: f["small"]["messages"] == 20 and f["history"]["seeded"] == 200
        and f["history"]["pruned_deliveries"] == 220 and "page_unread_last_ms" in f["history"]
        and f["history"]["audit_seeded"] == 25 and f["history"]["audit_board_ms"] > 0
        and f["emergency"]["last_seconds"] is not None, database=True),
}
# Tested below on their own: a server that runs until stopped, and two readers of files.
# Run by their own tests: failover.py at a tiny size by tests/ops/test_failover.py.
# pgprofile.py is a module scale.py imports for --profile, which turns on the server's statement
# log (a server-wide setting): not done on the suite's shared server; it is imported there.
SPECIAL = {"carriersim.py", "sink.py", "bounce_accuracy.py", "profile_breakdown.py", "failover.py",
           "pgprofile.py"}

PACKAGE_OF = {"postfix": "postfix", "opendkim": "opendkim"}


def _env() -> dict[str, str]:
    # The operator's own MAMORU_* settings must not leak into a benchmark's configuration.
    return {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}


def _run(args: list[str]) -> Any:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{args[0]} printed nothing"
    return json.loads(lines[-1])


def test_every_script_in_bench_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")}
    covered = {name.split()[0] for name in CASES} | SPECIAL
    assert scripts - covered == set(), "add the new benchmark to tests/bench/test_smoke.py"
    assert covered - scripts == set()


@pytest.fixture
async def empty_db(server_url: str) -> AsyncIterator[str]:
    # Empty, not the migrated template: the script migrates it as it would a new database.
    async with scratch_database(server_url, "mamoru_bench", template=None) as url:
        yield url


def _skip_without_packages(case: Case) -> None:
    for exe in case.needs:
        if not (shutil.which(exe) or Path(f"/usr/sbin/{exe}").exists()):
            pytest.skip(f"needs the Debian package {PACKAGE_OF[exe]} (apt-get install {exe})")
    if case.needs and os.geteuid() != 0:
        pytest.skip("the private Postfix instance needs root")


def _args(name: str) -> list[str]:
    return [str(BENCH / name.split()[0]), *CASES[name].args]


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.database))
async def test_script_runs_at_a_tiny_size_on_a_new_database(name: str, empty_db: str) -> None:
    _skip_without_packages(CASES[name])
    figures = _run([*_args(name), "--database-url", empty_db])
    assert CASES[name].check(figures), figures


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if not c.database))
def test_script_runs_at_a_tiny_size(name: str) -> None:
    _skip_without_packages(CASES[name])
    figures = _run(_args(name))
    assert CASES[name].check(figures), figures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp_greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.settimeout(10)
        return conn.recv(512)


def test_carrier_simulator_announces_its_ports_answers_and_reports() -> None:
    proc = subprocess.Popen([sys.executable, str(BENCH / "carriersim.py")], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())["ports"]
        assert ports
        assert _smtp_greeting(next(iter(ports.values()))).startswith(b"220")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        stats = json.loads(out.strip().splitlines()[-1])
        assert set(stats) == set(ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_sink_accepts_connections_until_stopped() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "sink.py"), "--listen", f"127.0.0.1:{port}", "--aiosmtpd"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"listen": f"127.0.0.1:{port}"}
        assert _smtp_greeting(port).startswith(b"220")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_bounce_accuracy_reads_a_corpus(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(
        b"From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n\n<taro@example.org>:\n"
        b"Remote host said: 550 5.1.1 <taro@example.org>... User Unknown\n"
    )
    (tmp_path / "labels.csv").write_text(
        "file,index,status,replycode,reason,hardbounce\na.eml,1,5.1.1,550,userunknown,true\n"
    )
    figures = _run([str(BENCH / "bounce_accuracy.py"), "--corpus", str(tmp_path)])
    assert figures["recipients"] == 1


def test_profile_breakdown_sorts_stacks_into_stages(tmp_path: Path) -> None:
    stacks = tmp_path / "worker-0.txt"
    stacks.write_text(
        "run (x.py:1);sign_rsa (engine/message/dkim.py:10) 30\n"
        "run (x.py:1);send (engine/delivery/_smtp.py:5) 10\n"
    )
    figures = _run([str(BENCH / "profile_breakdown.py"), str(stacks), "--messages", "10"])
    assert figures["samples"] == 40
    assert figures["us_per_mail"]["RSA private-key step"] == pytest.approx(15000.0)
