"""`mamoru serve`'s log as JSON: a broadcast's start and finish, HTTP requests, and no address
or token in any line (issue 23)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from commands import ROOT, config_file, mamoru
from sinks import Sink, free_port
from support import wait_until

RECIPIENTS = ["taro.yamada@example.jp", "hanako.suzuki@example.jp", "reject.ichiro@example.jp"]
TOKEN = "1.abcdefgh.SECRETTOKENxyz0123456789"


def json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.mark.slow
async def test_serve_logs_broadcasts_and_requests_as_json_without_addresses_or_tokens(
    tmp_path: Path, db_url: str
) -> None:
    port = free_port()
    with Sink() as sink:
        cfg = config_file(tmp_path, db_url, sink.address)
        text = cfg.read_text(encoding="utf-8").replace(
            '[http]\nlisten = ""', f'[http]\nlisten = "127.0.0.1:{port}"')
        cfg.write_text(text + '\n[host]\nname = "mail-a"\n\n[log]\nformat = "json"\n',
                       encoding="utf-8")
        body = tmp_path / "body.txt"
        body.write_text("明日は通常どおり登校です。\n", encoding="utf-8")
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "お知らせ",
            "--body-file", body, *[a for r in RECIPIENTS for a in ("--to", r)],
        )
        assert sent.returncode == 0, sent.stderr
        broadcast = int(sent.stdout.strip().split()[-1])

        log_path = tmp_path / "serve.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
        with log_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "1",
                stdout=asyncio.subprocess.DEVNULL, stderr=err, cwd=ROOT, env=env,
            )
        try:
            def events() -> list[str]:
                return [line.get("event", "") for line in json_lines(log_path)]

            await wait_until(lambda: "broadcast.finished" in events(), timeout=60, interval=0.1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/healthz")).status_code == 200
                page = await client.get(f"/m/{TOKEN}?k=querysecret")
                assert page.status_code >= 400
            await wait_until(lambda: events().count("http.request") >= 2, timeout=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=30)

    lines = json_lines(log_path)
    assert lines and all(line["host"] == "mail-a" for line in lines)
    by_event = {line.get("event"): line for line in lines}
    started, finished = by_event["broadcast.started"], by_event["broadcast.finished"]
    assert started["broadcast_id"] == broadcast and started["recipients"] == 3
    assert (finished["broadcast_id"], finished["delivered"], finished["failed"]) == (
        broadcast, 2, 1)
    assert [line.get("event") for line in lines].count("broadcast.finished") == 1
    requests = [(r["method"], r["route"]) for r in lines if r.get("event") == "http.request"]
    assert ("GET", "/healthz") in requests and ("GET", "/m/{token}") in requests
    raw = log_path.read_text(encoding="utf-8")
    for secret in (*RECIPIENTS, "taro", "hanako", "reject.ichiro", TOKEN, "SECRETTOKEN",
                   "querysecret"):
        assert secret not in raw
