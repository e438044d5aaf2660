"""One metrics endpoint per host: `serve --workers 2` answers `metrics.listen` with the sum of
both workers (prometheus-client's multiprocess mode), and opens no port per worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from commands import ROOT, config_file, mamoru
from sinks import Sink, free_port
from support import wait_until

RECIPIENTS = 100


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@pytest.mark.slow
async def test_two_workers_one_endpoint_summing_both(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    with Sink() as sink:
        cfg = config_file(tmp_path, db_url, sink.address, delivery="concurrency = 5")
        cfg.write_text(cfg.read_text(encoding="utf-8").replace(
            '[metrics]\nlisten = ""', f'[metrics]\nlisten = "127.0.0.1:{port}"'),
            encoding="utf-8")
        body = tmp_path / "body.txt"
        body.write_text("本日の下校は14時です。\n", encoding="utf-8")
        to = tmp_path / "to.txt"
        to.write_text("".join(f"slow{i}@example.jp\n" for i in range(RECIPIENTS)))
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "下校",
            "--body-file", body, "--to-file", to,
        )
        assert sent.returncode == 0, sent.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "2",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT, env=env,
        )
        conn = await asyncpg.connect(db_url)
        try:
            async def all_delivered() -> bool:
                n = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
                return bool(n == RECIPIENTS)

            await wait_until(all_delivered, timeout=60, interval=0.2)
            runners = await conn.fetchval("SELECT count(DISTINCT runner) FROM delivery_attempts")

            def counted() -> bool:
                try:
                    got = scrape(port).get('mamoru_deliveries_total{outcome="delivered"}')
                except OSError:
                    return False
                return got == RECIPIENTS

            # Both workers delivered, and the one endpoint counts every mail of both.
            await wait_until(counted, timeout=10, interval=0.2)
            values = scrape(port)
            with socket.socket() as s:
                per_worker_port_free = s.connect_ex(("127.0.0.1", port + 1)) != 0
        finally:
            await conn.close()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=30)

    assert runners == 2
    assert values["mamoru_claimed_total"] >= RECIPIENTS
    assert values["mamoru_send_seconds_count"] == RECIPIENTS
    assert per_worker_port_free
    assert proc.returncode == 0
