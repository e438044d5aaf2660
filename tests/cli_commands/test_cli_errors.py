"""The mamoru command's newer parts as an operator meets them: scheduled broadcasts, cancel,
one-line errors with their exit codes, and --config on either side of the subcommand."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import asyncpg
import pytest
from commands import config_file, mamoru
from support import make_settings


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


@pytest.fixture
def body(tmp_path: Path) -> Path:
    p = tmp_path / "body.txt"
    p.write_text("明日の授業参観は予定どおり行います。\n", encoding="utf-8")
    return p


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    return config_file(tmp_path, db_url, "127.0.0.1:25")


async def cli(*args: str | Path) -> tuple[int, str, str]:
    result = await asyncio.to_thread(mamoru, *args)
    return result.returncode, result.stdout, result.stderr


async def count(db_url: str, sql: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_send_at_in_the_past_is_refused_on_one_line(
    cfg: Path, db_url: str, body: Path
) -> None:
    code, _, err = await cli(
        "send", "-c", cfg, "--sender", "s@example.jp", "--subject", "参観", "--body-file",
        body, "--to", "a@example.jp", "--send-at", "2025-11-23T07:00+09:00",
    )
    assert code == 2
    line = one_line(err)
    assert "過去" in line and "in the past" in line
    assert await count(db_url, "SELECT count(*) FROM broadcasts") == 0


async def test_scheduled_broadcasts_are_listed_newest_first(
    cfg: Path, db_url: str, body: Path
) -> None:
    sent = []
    for send_at in ("", "2099-04-01T07:00+09:00"):
        code, out, err = await cli(
            "send", "-c", cfg, "--sender", "s@example.jp", "--subject", "参観", "--body-file",
            body, "--to", "a@example.jp", "--to", "A@example.jp", "--to", "b@example.jp",
            *(("--send-at", send_at) if send_at else ()),
        )
        assert code == 0, err
        assert "2 件の宛先" in err
        sent.append(int(out))
    now_id, later_id = sent

    code, out, err = await cli("--config", cfg, "broadcasts", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)["broadcasts"]
    assert [b["id"] for b in listed] == [later_id, now_id]
    assert [b["state"] for b in listed] == ["scheduled", "sending"]
    # a@ and A@ are one recipient.
    assert listed[0]["recipients"] == 2 and listed[0]["states"]["queued"] == 2

    code, out, err = await cli("broadcasts", "list", "--scheduled", "--json", "-c", cfg)
    assert [b["id"] for b in json.loads(out)["broadcasts"]] == [later_id]


async def test_cancel_stops_a_scheduled_broadcast_once(cfg: Path, db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.delivery.context import Engine
    from engine.queue import NewBroadcast

    eng = await Engine.open(make_settings(db_url))
    try:
        later = datetime.now(UTC) + timedelta(days=1)
        bid = await eng.queue.enqueue(
            NewBroadcast("s@example.jp", "遠足", "本文", ["a@example.jp", "b@example.jp"],
                         send_at=later),
            datetime.now(UTC), 3600,
        )
    finally:
        await eng.close()

    code, out, err = await cli("broadcasts", "cancel", str(bid), "-c", cfg)
    assert code == 0, err
    assert "取り消しました" in out and "2 件" in out
    assert await count(
        db_url, f"SELECT count(*) FROM deliveries WHERE broadcast_id = {bid} "
        "AND state = 'failed' AND reason = 'cancelled'"
    ) == 2
    code, out, _ = await cli("broadcasts", "list", "-c", cfg)
    assert code == 0 and "取り消し" in out

    for target, words in ((bid, "already cancelled"), (4242, "no broadcast 4242")):
        code, _, err = await cli("broadcasts", "cancel", str(target), "-c", cfg)
        assert code == 2
        assert words in one_line(err)


async def test_status_lists_newest_first_and_refuses_a_negative_count(
    cfg: Path, db_url: str, body: Path
) -> None:
    for subject in ("一通目", "二通目"):
        code, _, err = await cli(
            "send", "-c", cfg, "--sender", "s@example.jp", "--subject", subject,
            "--body-file", body, "--to", "a@example.jp",
        )
        assert code == 0, err
    code, out, err = await cli("--config", cfg, "status", "--json")
    assert code == 0, err
    assert [b["subject"] for b in json.loads(out)["broadcasts"]] == ["二通目", "一通目"]
    code, _, err = await cli("status", "--latest", "-1", "-c", cfg)
    assert code == 2
    assert "--latest" in one_line(err)


async def test_usage_errors_and_conflicting_configs_are_one_line(cfg: Path) -> None:
    code, _, err = await cli("status", "--no-such-option", "-c", cfg)
    assert code == 2 and "--no-such-option" in one_line(err)
    code, _, err = await cli("--config", cfg, "status", "--config", "/elsewhere.toml")
    assert code == 2 and "--config" in one_line(err)


async def test_suppression_import_with_an_unterminated_quote_imports_nothing(
    cfg: Path, db_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        'address,note\nfirst@example.jp,"転居\nsecond@example.jp,ok\n', encoding="utf-8"
    )
    code, _, err = await cli("--config", cfg, "suppression", "import", csv_file)
    assert code == 2
    assert "line 2" in one_line(err)
    assert await count(db_url, "SELECT count(*) FROM suppressions") == 0


def test_serve_with_a_missing_dkim_key_is_one_line(cfg: Path) -> None:
    with cfg.open("a", encoding="utf-8") as f:
        f.write(
            '\n[[dkim.keys]]\ndomain = "example.jp"\nselector = "s1"\n'
            'private_key = "/nonexistent/mamoru-test.pem"\n'
        )
    result = mamoru("serve", "-c", cfg, "--workers", "2")
    code, err = result.returncode, result.stderr
    assert code == 1
    line = one_line(err)
    assert "/nonexistent/mamoru-test.pem" in line and "Traceback" not in err


def test_serve_with_its_metrics_port_in_use_is_one_line(cfg: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = f'[metrics]\nlisten = "127.0.0.1:{port}"'
        cfg.write_text(cfg.read_text().replace('[metrics]\nlisten = ""', listen))
        result = mamoru("serve", "-c", cfg, "--workers", "2")
    code, err = result.returncode, result.stderr
    assert code == 1
    line = one_line(err)
    assert f"port {port}" in line and "metrics.listen" in line


def test_serve_with_its_submission_port_in_use_is_one_line(cfg: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with cfg.open("a") as f:
            f.write(f'\n[submission]\nlisten = "127.0.0.1:{port}"\n'
                    'domain = "mail.example.jp"\nallow_plain_auth = true\n')
        result = mamoru("serve", "-c", cfg, "--workers", "1")
    code, err = result.returncode, result.stderr
    assert code == 1
    line = one_line(err)
    assert f"port {port}" in line and "submission.listen" in line


def test_a_database_lost_mid_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from cli.options import run

    async def lost() -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(typer.Exit) as stopped:
        run(lost)
    assert stopped.value.exit_code == 1
    assert "database unreachable" in one_line(capsys.readouterr().err)
