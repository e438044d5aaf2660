"""`mamoru suppression ...` and `mamoru report errors` as an operator runs them (Typer apps)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import asyncpg
from commands import config_file
from typer import Typer
from typer.testing import CliRunner, Result

from cli.report_cmd import app as report_app
from cli.suppression_cmd import app as suppression_app


async def invoke(app: Typer, *args: str | Path) -> Result:
    # In a thread: the command runs its own event loop, as it does from the shell. A wide
    # terminal, so that table cells are not folded across lines.
    runner = CliRunner(env={"COLUMNS": "200"})
    argv = [str(a) for a in args]
    return await asyncio.to_thread(lambda: runner.invoke(app, argv))


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


async def fetch(db_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_suppression_add_list_remove(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    added = await invoke(
        suppression_app, "add", "Chichi@DoCoMo.ne.jp", "--reason", "保護者の依頼",
        "--note", "4月に再開", "-c", cfg,
    )
    assert added.exit_code == 0, added.output
    assert "Chichi@docomo.ne.jp" in added.stdout
    listed = await invoke(suppression_app, "list", "-c", cfg)
    assert listed.exit_code == 0, listed.output
    assert "配信停止リスト (1 件)" in listed.stdout and "Chichi@docomo.ne.jp" in listed.stdout
    assert "手動登録" in listed.stdout

    bad = await invoke(suppression_app, "add", "no-at-sign", "--reason", "x", "-c", cfg)
    assert bad.exit_code == 2
    assert one_line(bad.stderr).startswith("mamoru: error: ")

    removed = await invoke(suppression_app, "remove", "Chichi@docomo.ne.jp", "-c", cfg)
    assert removed.exit_code == 0, removed.output
    again = await invoke(suppression_app, "remove", "Chichi@docomo.ne.jp", "-c", cfg)
    assert again.exit_code == 1
    assert "not on the suppression list" in one_line(again.stderr)
    assert await fetch(db_url, "SELECT * FROM suppressions") == []


async def test_suppression_import_is_all_or_nothing_and_export_round_trips(
    tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "address,reason,note\n"
        "a@example.jp,userunknown,\n"
        "b@@example.jp,userunknown,\n"
        "c@example.jp,mailboxfull,満杯\n",
        encoding="utf-8",
    )
    result = await invoke(suppression_app, "import", bad, "-c", cfg)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "line 3" in line and "bad.csv" in line and "nothing was imported" in line
    assert await fetch(db_url, "SELECT * FROM suppressions") == []

    good = tmp_path / "good.csv"
    # Saved from Excel on Japanese Windows: CP932.
    good.write_text(bad.read_text().replace("b@@example.jp", "b@example.jp"), encoding="cp932")
    result = await invoke(suppression_app, "import", good, "-c", cfg)
    assert result.exit_code == 0, result.output
    assert "3 件" in result.stdout

    exported = await invoke(suppression_app, "export", "-c", cfg)
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("\ufeffaddress,")  # UTF-8 with BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(exported.stdout.lstrip("\ufeff"))))
    assert sorted(r["address"] for r in rows) == ["a@example.jp", "b@example.jp", "c@example.jp"]
    by = {r["address"]: r for r in rows}
    assert (by["a@example.jp"]["category"], by["a@example.jp"]["source"]) == (
        "unknown_user", "import"
    )
    assert by["c@example.jp"]["note"] == "満杯"

    out_file = tmp_path / "out.csv"
    written = await invoke(suppression_app, "export", out_file, "-c", cfg)
    assert written.exit_code == 0, written.output
    assert out_file.read_text(encoding="utf-8") == exported.stdout
    missing = await invoke(suppression_app, "import", tmp_path / "nope.csv", "-c", cfg)
    assert missing.exit_code == 2 and "does not exist" in one_line(missing.stderr)


async def _failures(db_url: str) -> int:
    """A broadcast with failures of several kinds, an auto-reply and an unclassified bounce."""
    conn = await asyncpg.connect(db_url)
    try:
        bid: int = await conn.fetchval(
            "INSERT INTO broadcasts (sender, subject, body, priority, send_at, recipient_count)"
            " VALUES ('s@example.jp', '件名', '本文', 1, now(), 6) RETURNING id"
        )
        rows = [
            ("u1@example.jp", "failed", "userunknown", "unknown_user", 550, "5.1.1", "Unknown"),
            ("u2@example.jp", "failed", "userunknown", "unknown_user", 550, "5.1.1", "No user"),
            ("u3@example.jp", "failed", "suppressed", "unknown_user", None, None, "配信停止リスト"),
            ("f1@example.jp", "failed", "mailboxfull", "mailbox_full", 552, "5.2.2", "Quota"),
            ("ok@example.jp", "delivered", None, None, 250, None, "OK"),
            ("away@example.jp", "delivered", None, None, 250, None, "OK"),
        ]
        ids = {}
        for r, state, reason, category, code, status, text in rows:
            ids[r] = await conn.fetchval(
                "INSERT INTO deliveries (broadcast_id, recipient, domain, priority, state,"
                " next_attempt_at, expires_at, reason, category, last_code, last_status,"
                " last_text, finished_at) VALUES ($1, $2, 'example.jp', 1, $3, now(), now(),"
                " $4, $5, $6, $7, $8, now()) RETURNING id",
                bid, r, state, reason, category, code, status, text,
            )
        # u1's failure put it on the list (u2's did not, say an operator removed it since);
        # u3 was on it already and never sent.
        await conn.execute(
            "INSERT INTO suppressions (address_key, reason, category, source, delivery_id)"
            " VALUES ('\\x01', 'userunknown', 'unknown_user', 'smtp', $1)",
            ids["u1@example.jp"],
        )
        await conn.execute(
            "INSERT INTO bounces (received_at, mail_from, rcpt, delivery_id, kind, recipient,"
            " reason, category, classified, raw) VALUES"
            " (now(), '', 'b-x', $1, 'autoreply', 'away@example.jp', 'vacation', 'autoreply',"
            "  true, ''),"
            " (now(), '', 'b-y', $2, 'unknown', NULL, NULL, NULL, false, 'junk')",
            ids["away@example.jp"], ids["ok@example.jp"],
        )
        return bid
    finally:
        await conn.close()


async def test_report_errors_groups_by_category_as_json_csv_and_table(
    tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    bid = await _failures(db_url)
    result = await invoke(report_app, "errors", "--broadcast", str(bid), "--json", "-c", cfg)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    groups = {g["key"]: g for g in data["categories"]}
    assert [g["key"] for g in data["categories"]] == ["unknown_user", "mailbox_full", "autoreply"]
    unknown = groups["unknown_user"]
    assert (unknown["label"], unknown["hard"], unknown["count"], unknown["suppressed"]) == (
        "宛先不明", True, 3, 2
    )
    assert len(unknown["examples"]) == 3
    assert {e["address"] for e in unknown["examples"]} == {
        "u1@example.jp", "u2@example.jp", "u3@example.jp"
    }
    assert groups["mailbox_full"]["examples"][0]["status"] == "5.2.2"
    assert groups["autoreply"]["count"] == 1 and groups["autoreply"]["hard"] is False
    assert (data["total"], data["unclassified"]) == (5, 1)

    result = await invoke(
        report_app, "errors", "--broadcast", str(bid), "--csv", "--examples", "1", "-c", cfg
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff"))))
    assert [(r["category"], r["count"]) for r in rows] == [
        ("unknown_user", "3"), ("mailbox_full", "1"), ("autoreply", "1")
    ]
    assert rows[0]["label"] == "宛先不明" and rows[0]["hard"] == "hard"

    table = await invoke(report_app, "errors", "-c", cfg)
    assert table.exit_code == 0, table.output
    assert "エラー区分別レポート" in table.stdout and "容量超過" in table.stdout
    assert "未分類のエラーメール 1 件" in table.stdout

    future = await invoke(report_app, "errors", "--since", "2999-01-01", "--json", "-c", cfg)
    assert json.loads(future.stdout)["total"] == 0
    bad = await invoke(report_app, "errors", "--since", "yesterday", "-c", cfg)
    assert bad.exit_code == 2 and "--since" in one_line(bad.stderr)
    missing = await invoke(report_app, "errors", "--broadcast", "4242", "-c", cfg)
    assert missing.exit_code == 1 and "no broadcast 4242" in one_line(missing.stderr)
