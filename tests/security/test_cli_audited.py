"""Every command-line action that changes something is in the audit log with the OS user, and
an auditor's `mamoru audit verify` / `checkpoint` catch what the chain alone cannot."""

from __future__ import annotations

import getpass
from pathlib import Path

import asyncpg
import pytest
from commands import config_file, run_mamoru

run = run_mamoru


@pytest.mark.slow
async def test_changes_from_the_command_line_are_audited_with_the_os_user(
    tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:9")
    body = tmp_path / "body.txt"
    body.write_text("台風のため休校します。", encoding="utf-8")
    steps: list[tuple[str | Path, ...]] = [
        ("schools", "add", "city", "みどり市教育委員会", "--kind", "教育委員会"),
        ("schools", "add", "sho1", "第一小学校", "--kind", "小学校"),
        ("groups", "add", "見守り", "--school", "sho1"),
        ("suppression", "add", "taro@docomo.ne.jp", "--reason", "保護者の依頼"),
        ("send", "--sender", "info@school.example.jp", "--subject", "休校", "--body-file", body,
         "--to", "hanako@example.jp", "--send-at", "2099-01-01T09:00"),
        ("broadcasts", "cancel", "1"),
    ]
    for args in steps:
        code, _, err = await run(*args, "-c", cfg)
        assert code == 0, (args, err)
    # A refused change is recorded too.
    code, _, _ = await run("groups", "add", "見守り", "--school", "nowhere", "-c", cfg)
    assert code == 2
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT action, object, actor_kind, actor_name, result, detail FROM audit_log "
            "ORDER BY seq")
    finally:
        await conn.close()
    actions = [(r["action"], r["result"]) for r in rows]
    assert actions == [
        ("school.add", "ok"), ("school.add", "ok"), ("group.add", "ok"),
        ("suppression.add", "ok"), ("broadcast.send", "ok"), ("broadcast.cancel", "ok"),
        ("group.add", "failed"),
    ]
    assert all(r["actor_kind"] == "cli" for r in rows)
    assert all(getpass.getuser() in r["actor_name"] for r in rows)
    # The address is masked in the log, never written in full.
    suppressed = rows[3]
    assert "taro@docomo.ne.jp" not in suppressed["object"]
    assert "broadcast=1" in rows[4]["detail"]


@pytest.mark.slow
async def test_verify_with_checkpoints_catches_removed_newest_entries(
    tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:9")
    for code_ in ("city", "sho1"):
        kind = "教育委員会" if code_ == "city" else "小学校"
        code, _, err = await run("schools", "add", code_, code_, "--kind", kind, "-c", cfg)
        assert code == 0, err
    code, out, err = await run("audit", "checkpoint", "-c", cfg)
    assert code == 0 and "3 番" in err + out, err
    code, out, _ = await run("audit", "verify", "-c", cfg)
    assert code == 0 and "改ざんされていません" in out
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("DELETE FROM audit_log WHERE seq >= 2")
    finally:
        await conn.close()
    code, out, _ = await run("audit", "verify", "-c", cfg)
    assert code == 3 and "removed" in out
    # A copy the auditor kept elsewhere is checked the same way; a missing one is an error.
    copy = tmp_path / "usb" / "checkpoints.txt"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "audit.checkpoints").read_bytes())
    code, out, _ = await run("audit", "verify", "--checkpoint", copy, "-c", cfg)
    assert code == 3
    code, _, err = await run("audit", "verify", "--checkpoint", tmp_path / "nope", "-c", cfg)
    assert code == 2 and "ファイルがありません" in err
