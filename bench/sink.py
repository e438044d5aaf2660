"""A counting SMTP sink for benchmarks: accepts everything, keeps nothing.

    python bench/sink.py --listen 127.0.0.1:2525

Uses Postfix's ``smtp-sink`` (C, the fastest here) when ``--prefer-postfix`` is given and it is
installed; otherwise an aiosmtpd server on uvloop. Prints ``{"listen": "HOST:PORT"}`` once
ready. Both kinds answer 250 to every command and discard the data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

SMTP_SINK = shutil.which("smtp-sink") or (
    "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None
)


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok"


def start_sink(host: str, port: int, prefer_postfix: bool = True) -> subprocess.Popen[bytes]:
    """Start a sink process listening on host:port; returns once it accepts connections."""
    import socket
    import sys
    import time

    if prefer_postfix and SMTP_SINK:
        # -c: count and report; 1000: listen backlog. Runs as the invoking user.
        cmd = [SMTP_SINK, "-u", "root", f"{host}:{port}", "1000"]
    else:
        cmd = [sys.executable, __file__, "--listen", f"{host}:{port}", "--aiosmtpd"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the sink did not start on {host}:{port}")


async def _serve_aiosmtpd(host: str, port: int) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(_Discard(), hostname="sink"), host, port,
                                      backlog=1000)
    print(json.dumps({"listen": f"{host}:{port}"}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="counting SMTP sink for benchmarks")
    parser.add_argument("--listen", default="127.0.0.1:2525")
    parser.add_argument(
        "--aiosmtpd", action="store_true", help="use aiosmtpd even if smtp-sink exists"
    )
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    import uvloop

    uvloop.run(_serve_aiosmtpd(host, int(port)))
