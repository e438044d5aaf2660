"""Two `mamoru serve` hosts on one PostgreSQL share a broadcast; one killed with SIGKILL
mid-broadcast, the other finishes it: nothing lost, duplicates only among what the dead one
held (DESIGN.md "Scaling out", issue 23)."""

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

RECIPIENTS = 1000
CONCURRENCY = 10


def host_config(directory: Path, db_url: str, target: str, name: str, egress: str) -> Path:
    """One host's configuration: the shared database, its own name and egress address."""
    directory.mkdir()
    cfg = config_file(directory, db_url, target, delivery=f"concurrency = {CONCURRENCY}")
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[host]\nname = "{name}"\n\n'
                 f'[[egress.sources]]\naddress = "{egress}"\nhelo = "{name}.example.jp"\n')
    return cfg


async def start_serve(cfg: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    log = (cfg.parent / "serve.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "1",
        stdout=log, stderr=log, cwd=ROOT, env=env, start_new_session=True,
    )


def delivery_id(message_id: str) -> int:
    """The delivery id from a Message-ID <mamoru.BROADCAST.DELIVERY@domain>."""
    return int(message_id.strip("<>").partition("@")[0].split(".")[2])


@pytest.mark.slow
async def test_second_host_finishes_what_a_killed_host_held(tmp_path: Path, db_url: str) -> None:
    with Sink() as sink:
        cfg_a = host_config(tmp_path / "a", db_url, sink.address, "host-a", "127.0.0.2")
        cfg_b = host_config(tmp_path / "b", db_url, sink.address, "host-b", "127.0.0.3")
        body = tmp_path / "body.txt"
        body.write_text("台風のため臨時休校とします。\n", encoding="utf-8")
        to = tmp_path / "to.txt"
        to.write_text("".join(f"slow{i}@example.jp\n" for i in range(RECIPIENTS)))
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg_a, "--sender", "school@example.jp",
            "--subject", "臨時休校", "--body-file", body, "--to-file", to,
            "--priority", "emergency",
        )
        assert sent.returncode == 0, sent.stderr

        a = await start_serve(cfg_a)
        b = await start_serve(cfg_b)
        conn = await asyncpg.connect(db_url)
        try:
            def peers() -> Counter[str]:
                with sink.handler.lock:
                    return Counter(r.peer[0] for r in sink.handler.received)

            # Both hosts send the one broadcast, each from its own address.
            await wait_until(lambda: min(peers()["127.0.0.2"], peers()["127.0.0.3"]) >= 20,
                             timeout=60)
            os.killpg(a.pid, signal.SIGKILL)
            await asyncio.wait_for(a.wait(), timeout=10)
            # Claimed by the dead host and possibly sent, with no outcome recorded.
            held_by_a = {r["id"] for r in await conn.fetch(
                "SELECT id FROM deliveries WHERE state = 'sending' "
                "AND lease_owner LIKE 'host-a:%'")}
            delivered_at_kill = len(sink.handler.received)
            assert delivered_at_kill < RECIPIENTS, "finished before the kill: nothing tested"
            assert held_by_a, "host A held nothing at the kill: nothing tested"

            async def all_delivered() -> bool:
                n = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
                return bool(n == RECIPIENTS)

            # The lease is 5 minutes: host B takes A's rows back because A stopped heartbeating.
            await wait_until(all_delivered, timeout=90, interval=0.2)
            states = await conn.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        finally:
            await conn.close()
            for p in (a, b):
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(p.wait(), timeout=30)

    assert [(r["state"], r["n"]) for r in states] == [("delivered", RECIPIENTS)]
    per_id = Counter(delivery_id(m) for m in sink.handler.message_ids())
    assert len(per_id) == RECIPIENTS  # nothing lost
    twice = {d for d, n in per_id.items() if n > 1}
    assert twice <= held_by_a  # duplicates only among what the dead host held
    assert max(per_id.values()) <= 2
    # Host B sent the rest, from its own address only.
    after = sink.handler.received[delivered_at_kill:]
    assert after and {r.peer[0] for r in after} == {"127.0.0.3"}


def test_runner_ids_are_unique_per_start() -> None:
    """A restarted process may get the dead one's pid (containers: pid 1 again) and host name;
    its runner id must still differ, or the dead one's leases would wait out their lease."""
    from engine.delivery._runner import runner_name

    first, second = runner_name("host-a"), runner_name("host-a")
    assert first != second
    assert first.startswith(f"host-a:{os.getpid()}:")
