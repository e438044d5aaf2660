"""The embedded database under control: where the configuration is looked for, the refusal to
create a database (or a key) anywhere but through ``mamoru init``, ``mamoru db status|stop``,
and ``serve`` bringing a killed postmaster back.

Each test runs the real ``mamoru`` command in a directory of its own, as an operator would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sinks import Sink
from support import wait_until

from engine.platform import embedded

ROOT = Path(__file__).resolve().parents[2]


def mamoru(cwd: Path, *args: str | Path, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)], cwd=cwd, env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"postgresql://mamoru@127.0.0.1:{s.getsockname()[1]}/nowhere"


def test_a_stray_directory_gets_no_database(tmp_path: Path) -> None:
    done = mamoru(tmp_path, "status")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"{tmp_path}/var/pgdata にデータベースがありません" in line
    assert "組み込みの既定値" in line and "mamoru init" in line
    assert list(tmp_path.iterdir()) == []  # no database, no key, no folder


def test_search_order_local_file_then_system_file(tmp_path: Path) -> None:
    local, system = dead_url(), dead_url()
    etc = tmp_path / "etc.toml"
    etc.write_text(f'[database]\nurl = "{system}"\n', encoding="utf-8")
    env = {"MAMORU_TEST_SYSTEM_CONFIG": str(etc)}
    # No ./mamoru.toml: the system file.
    done = mamoru(tmp_path, "status", env=env)
    assert done.returncode == 1 and system in done.stderr
    # ./mamoru.toml comes first.
    (tmp_path / "mamoru.toml").write_text(f'[database]\nurl = "{local}"\n', encoding="utf-8")
    done = mamoru(tmp_path, "schools", "list", env=env)
    assert done.returncode == 1 and local in done.stderr
    # MAMORU_CONFIG before both, and --config before that.
    other = tmp_path / "other.toml"
    other.write_text(f'[database]\nurl = "{dead_url()}"\n', encoding="utf-8")
    done = mamoru(tmp_path, "db", "status", env={**env, "MAMORU_CONFIG": str(other)})
    assert done.returncode == 0
    assert f"{other} (MAMORU_CONFIG)" in done.stdout
    done = mamoru(tmp_path, "--config", etc, "db", "status",
                  env={**env, "MAMORU_CONFIG": str(other)})
    assert f"{etc} (--config)" in done.stdout and system in done.stdout


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A directory with a configuration whose embedded database lives under it; the server is
    stopped at the end whatever happened."""
    # A short data directory: PostgreSQL's socket path must stay under ~100 bytes.
    data = Path(f"/tmp/mamoru-ops-{os.getpid()}-{threading.get_ident() % 10000}-{tmp_path.name}")
    (tmp_path / "mamoru.toml").write_text(
        f"""
[database]
data_dir = "{data}"
pool_min = 1
pool_max = 4
[queue]
poll_interval = "50ms"
retry_base = "200ms"
retry_max = "500ms"
[metrics]
listen = ""
[http]
listen = ""
[inbound]
listen = ""
[dkim]
allow_unsigned = true
[shaping]
enabled = false
[people]
key_file = "keys/people.key"
[staff]
audit_key_file = "keys/audit.key"
""",
        encoding="utf-8",
    )
    try:
        yield tmp_path
    finally:
        try:
            embedded.stop(data)
        finally:
            subprocess.run(["rm", "-rf", str(data)], check=False)


def _data_dir(site: Path) -> Path:
    for line in (site / "mamoru.toml").read_text("utf-8").splitlines():
        if line.startswith("data_dir"):
            return Path(line.split('"')[1])
    raise AssertionError("no data_dir")


def test_init_then_db_status_and_stop(site: Path) -> None:
    data = _data_dir(site)
    refused = mamoru(site, "audit", "verify")
    assert refused.returncode == 1
    assert f"{data} にデータベースがありません" in refused.stderr
    assert f"{site}/mamoru.toml (./mamoru.toml)" in refused.stderr
    assert not (data / "PG_VERSION").exists() and not (site / "keys").exists()

    made = mamoru(site, "init")
    assert made.returncode == 0, made.stderr
    assert f"データベース (database): {data} 作成しました" in made.stdout
    for name in ("people.key", "link.key", "audit.key"):
        key = site / "keys" / name
        assert f"{key} 作成しました" in made.stdout
        assert key.stat().st_mode & 0o777 == 0o600
    again = mamoru(site, "init")
    assert again.returncode == 0 and "作成しました" not in again.stdout
    assert again.stdout.count("既にあります") == 4

    shown = mamoru(site, "db", "status")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    assert shown.returncode == 0, shown.stderr
    assert f"稼働中 (running), pid {pid}" in shown.stdout and str(data) in shown.stdout
    assert f"{data}/.s.PGSQL." in shown.stdout or ".s.PGSQL." in shown.stdout

    stopped = mamoru(site, "db", "stop")
    assert stopped.returncode == 0 and "停止しました" in stopped.stdout
    shown = mamoru(site, "db", "status")
    assert shown.returncode == 3 and "停止中 (stopped)" in shown.stdout
    assert mamoru(site, "db", "stop").stdout.count("動いていません") == 1


def test_a_missing_key_is_refused_not_made_again(site: Path) -> None:
    assert mamoru(site, "init").returncode == 0
    people_key = site / "keys" / "people.key"
    kept = people_key.read_bytes()
    people_key.unlink()
    done = mamoru(site, "schools", "list")
    assert done.returncode == 1
    assert "個人情報の暗号鍵のファイル" in done.stderr and str(people_key) in done.stderr
    assert not people_key.exists()
    audit_key = site / "keys" / "audit.key"
    people_key.write_bytes(kept)
    people_key.chmod(0o600)
    assert mamoru(site, "schools", "add", "001", "みなみ小学校", "--kind", "elementary"
                  ).returncode == 0  # writes an audit entry
    audit_key.unlink()
    done = mamoru(site, "audit", "verify")
    assert done.returncode == 1 and "監査ログ" in done.stderr
    assert not audit_key.exists()


def start_serve(site: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--workers", "1"], cwd=site,
        env={**clean, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )


async def test_serve_restarts_a_killed_postmaster(site: Path) -> None:
    data = _data_dir(site)
    with Sink() as sink:
        with (site / "mamoru.toml").open("a", encoding="utf-8") as fh:
            fh.write(f'[routing.transport]\n"*" = "{sink.address}"\n')
        assert mamoru(site, "init").returncode == 0
        first = int((data / "postmaster.pid").read_text().split()[0])
        serve = start_serve(site)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(serve.stdout or ()), daemon=True)
        reader.start()
        try:
            await wait_until(lambda: any("配信を開始します" in s for s in lines), timeout=60)
            assert any("restarted by serve" in s for s in lines)
            os.kill(first, signal.SIGKILL)
            # The watchdog starts a new postmaster on the same socket.
            await wait_until(
                lambda: (now := embedded.status(data)).running and now.pid != first,
                timeout=90, interval=0.2,
            )
            body = site / "body.txt"
            body.write_text("本日は臨時休校です。\n", encoding="utf-8")
            sent = mamoru(site, "send", "--sender", "school@example.jp", "--subject", "休校",
                          "--body-file", body, *(f"--to=g{i}@example.jp" for i in range(5)))
            assert sent.returncode == 0, sent.stderr
            # The same serve's runner delivers it: it reconnected to the restarted server.
            await wait_until(lambda: len(sink.handler.received) >= 5, timeout=90, interval=0.1)
            assert sorted(r.rcpt for r in sink.handler.received) == [
                f"g{i}@example.jp" for i in range(5)
            ]
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        assert serve.returncode == 0, "".join(lines)
