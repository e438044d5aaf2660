"""The mamoru command as an operator runs it: a separate process, exit codes, one-line errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from commands import ROOT, config_file, mamoru
from sinks import Sink, free_port

from engine.platform.clock import JST


async def broadcast_count(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM broadcasts"))
    finally:
        await conn.close()


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


@pytest.fixture
def body(tmp_path: Path) -> Path:
    p = tmp_path / "body.txt"
    p.write_text("台風接近のため、明日は臨時休校とします。\n", encoding="utf-8")
    return p


async def test_send_serve_status_and_deliveries(tmp_path: Path, db_url: str, body: Path) -> None:
    with Sink() as sink:
        cfg = config_file(tmp_path, db_url, sink.address)
        to = tmp_path / "to.txt"
        # Saved from Excel on Japanese Windows: CP932.
        to.write_text(
            "# 保護者\nchichi@example.jp\n\nhaha@docomo.ne.jp\nreject@ezweb.ne.jp\n",
            encoding="cp932",
        )
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "臨時休校",
            "--body-file", body, "--to-file", to, "--to", "sofu@example.jp",
            "--priority", "emergency",
        )
        assert sent.returncode == 0, sent.stderr
        bid = int(sent.stdout.strip())

        served = await asyncio.to_thread(mamoru, "serve", "-c", cfg, "--exit-when-idle")
        assert served.returncode == 0, served.stderr
        assert len(sink.handler.received) == 3

    status = await asyncio.to_thread(mamoru, "status", "-c", cfg, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["overall"]["delivered"] == 3 and data["overall"]["failed"] == 1
    [b] = data["broadcasts"]
    assert (b["id"], b["subject"], b["priority"], b["recipients"]) == (
        bid, "臨時休校", "emergency", 4
    )

    listed = await asyncio.to_thread(mamoru, "deliveries", str(bid), "-c", cfg, "--csv")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    # UTF-8 with BOM for Excel, Japanese headers and states, Japan time: the API's CSV.
    assert lines[0].startswith("\ufeff宛先,アカウント,状態,試行回数,応答コード")
    rejected = next(line for line in lines if line.startswith("reject@ezweb.ne.jp"))
    assert ",配信失敗,1,550,5.1.1," in rejected
    row = next(csv.DictReader(io.StringIO(listed.stdout.lstrip("\ufeff"))))
    assert row["暗号化 (TLS)"] == "なし"  # the test server offers no STARTTLS
    updated = datetime.strptime(row["更新日時"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST)
    assert abs(updated - datetime.now(UTC)) < timedelta(minutes=10)  # Japan time, not UTC

    table = await asyncio.to_thread(mamoru, "status", "-c", cfg)
    assert "配信済み" in table.stdout


async def test_unknown_config_key_is_one_line_naming_the_key(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    cfg.write_text(cfg.read_text().replace("pool_max = 4", "pool_max = 4\npool_maxx = 9"))
    result = await asyncio.to_thread(mamoru, "status", "-c", cfg)
    assert result.returncode != 0
    assert "unknown key database.pool_maxx" in one_line(result.stderr)


async def test_malformed_address_in_file_is_refused_and_nothing_stored(
    tmp_path: Path, db_url: str, body: Path
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    to = tmp_path / "to.txt"
    to.write_text("good@example.jp\nbad-address.example.jp\nalso good@example.jp\n")
    result = await asyncio.to_thread(
        mamoru, "send", "-c", cfg, "--sender", "s@example.jp", "--subject", "件名",
        "--body-file", body, "--to-file", to,
    )
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "line 2" in line and "line 3" in line
    assert await broadcast_count(db_url) == 0


async def test_empty_body_is_refused(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    result = await asyncio.to_thread(
        mamoru, "send", "-c", cfg, "--sender", "s@example.jp", "--subject", "件名",
        "--body-file", empty, "--to", "a@example.jp",
    )
    assert result.returncode == 2
    assert "empty" in one_line(result.stderr)
    assert await broadcast_count(db_url) == 0


async def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    cfg = config_file(tmp_path, f"postgresql://mamoru@127.0.0.1:{port}/mamoru", "127.0.0.1:25")
    result = await asyncio.to_thread(mamoru, "status", "-c", cfg)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "cannot connect to PostgreSQL" in line and str(port) in line


async def test_unknown_broadcast_is_reported(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    result = await asyncio.to_thread(mamoru, "deliveries", "4242", "-c", cfg)
    assert result.returncode == 1
    assert "no broadcast 4242" in one_line(result.stderr)


async def test_sigterm_stops_serve_cleanly(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )
    assert proc.stdout is not None
    # Wait for the banner that says it is running, then ask it to stop.
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line, "serve ended before it was ready"
        if b"Ctrl+C" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    assert "停止しました" in out.decode()


@pytest.mark.slow
async def test_two_workers_share_the_queue_and_send_each_mail_once(
    tmp_path: Path, db_url: str, body: Path
) -> None:
    with Sink() as sink:
        cfg = config_file(
            tmp_path, db_url, sink.address,
            queue="claim_batch = 10", delivery="concurrency = 10",
        )
        to = tmp_path / "to.txt"
        to.write_text("".join(f"slow{i}@example.jp\n" for i in range(800)))
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "s@example.jp", "--subject", "お知らせ",
            "--body-file", body, "--to-file", to,
        )
        assert sent.returncode == 0, sent.stderr
        served = await asyncio.to_thread(
            mamoru, "serve", "-c", cfg, "--workers", "2", "--exit-when-idle", timeout=120
        )
        assert served.returncode == 0, served.stderr
        received = sink.handler.message_ids()
    assert len(received) == len(set(received)) == 800
    conn = await asyncpg.connect(db_url)
    try:
        runners = await conn.fetchval("SELECT count(DISTINCT runner) FROM delivery_attempts")
        delivered = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
    finally:
        await conn.close()
    assert delivered == 800
    assert runners == 2


async def test_serve_starts_the_inbound_server_for_bounces(tmp_path: Path, db_url: str) -> None:
    import aiosmtplib

    port = free_port()
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25", inbound=f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "-c", str(cfg), "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )
    assert proc.stdout is not None
    banner = b""
    while b"Ctrl+C" not in banner:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line, f"serve ended before it was ready: {banner!r}"
        banner += line
    try:
        assert f"inbound SMTP 127.0.0.1:{port}".encode() in banner
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
        await smtp.connect()
        await smtp.ehlo()
        await smtp.mail("")
        # A return path that is not a valid VERP address is refused: no open relay.
        reply = await smtp.execute_command(b"RCPT", b"TO:<b-1-aaaaaaaaaa@example.jp>")
        assert reply.code == 550
        await smtp.quit()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0


async def test_send_with_a_display_name_and_reply_to(
    tmp_path: Path, db_url: str, body: Path
) -> None:
    from email import message_from_bytes, policy

    with Sink() as sink:
        cfg = config_file(tmp_path, db_url, sink.address)
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "臨時休校",
            "--body-file", body, "--to", "haha@docomo.ne.jp", "--sender-name", "みなみ小学校",
            "--reply-to", "kyoto@example.jp",
        )
        assert sent.returncode == 0, sent.stderr
        served = await asyncio.to_thread(mamoru, "serve", "-c", cfg, "--exit-when-idle")
        assert served.returncode == 0, served.stderr
        [mail] = sink.handler.received
    msg = message_from_bytes(mail.data, policy=policy.default)
    assert str(msg["From"]) == "みなみ小学校 <school@example.jp>"
    assert str(msg["Reply-To"]) == "kyoto@example.jp"


async def test_send_refuses_a_bad_reply_to_or_display_name(
    tmp_path: Path, db_url: str, body: Path
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:1")
    for option, value in (("--reply-to", "not an address"), ("--sender-name", "学校\r\nBcc: x"),
                          ("--sender-name", "School " * 40)):
        sent = await asyncio.to_thread(
            mamoru, "send", "-c", cfg, "--sender", "school@example.jp", "--subject", "件名",
            "--body-file", body, "--to", "haha@docomo.ne.jp", option, value,
        )
        assert sent.returncode == 2, sent.stderr
        assert option in one_line(sent.stderr)
    assert await broadcast_count(db_url) == 0
