"""A runner killed with SIGKILL mid-broadcast loses nothing when started again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from commands import ROOT, config_file, mamoru
from sinks import Sink
from support import wait_until

CONCURRENCY = 20
RECIPIENTS = 400


async def start_serve(cfg: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT, env=env,
    )


@pytest.mark.slow
async def test_sigkill_mid_broadcast_loses_nothing(tmp_path: Path, db_url: str) -> None:
    with Sink() as sink:
        cfg = config_file(
            tmp_path, db_url, sink.address,
            queue='lease_seconds = "2s"', delivery=f"concurrency = {CONCURRENCY}",
        )

        body = tmp_path / "body.txt"
        body.write_text("不審者情報: 下校時は複数人で帰宅してください。\n", encoding="utf-8")
        to = tmp_path / "to.txt"
        to.write_text("".join(f"slow{i}@example.jp\n" for i in range(RECIPIENTS)))
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "不審者情報",
            "--body-file", body, "--to-file", to,
        )
        assert sent.returncode == 0, sent.stderr

        first = await start_serve(cfg)
        await wait_until(lambda: len(sink.handler.received) >= RECIPIENTS // 4, timeout=60)
        first.send_signal(signal.SIGKILL)
        await asyncio.wait_for(first.wait(), timeout=10)
        at_kill = len(sink.handler.received)
        assert at_kill < RECIPIENTS, "the broadcast finished before the kill; nothing was tested"
        conn = await asyncpg.connect(db_url)
        # In flight at the kill: claimed, and possibly sent, but with no outcome recorded.
        in_flight = {
            r["id"] for r in await conn.fetch("SELECT id FROM deliveries WHERE state='sending'")
        }

        second = await start_serve(cfg)
        try:
            async def all_delivered() -> bool:
                n = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
                return bool(n == RECIPIENTS)

            await wait_until(all_delivered, timeout=90, interval=0.2)
            states = await conn.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        finally:
            await conn.close()
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), timeout=30)

    assert [(r["state"], r["n"]) for r in states] == [("delivered", RECIPIENTS)]
    per_id = Counter(delivery_id(m) for m in sink.handler.message_ids())
    # Every delivery arrived; only those in flight at the kill may have arrived twice.
    assert len(per_id) == RECIPIENTS
    twice = {d for d, n in per_id.items() if n > 1}
    assert twice <= in_flight
    assert max(per_id.values()) <= 2


def delivery_id(message_id: str) -> int:
    """The delivery id from a Message-ID of the form <mamoru.BROADCAST.DELIVERY@domain>."""
    return int(message_id.strip("<>").partition("@")[0].split(".")[2])
