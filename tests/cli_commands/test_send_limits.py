"""`mamoru send` refuses what the API refuses, in Japanese: a subject over the one shared
limit (engine.message.checks.MAX_SUBJECT) and a body file that is not UTF-8 (Shift_JIS)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from commands import config_file, mamoru

from engine.message.checks import MAX_SUBJECT


async def test_long_subject_and_shift_jis_body_are_refused_in_japanese(
    tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    body = tmp_path / "body.txt"
    body.write_text("本文\n", encoding="utf-8")
    sjis = tmp_path / "sjis.txt"
    sjis.write_bytes("臨時休校のお知らせ\n".encode("shift_jis"))
    base = ["send", "-c", cfg, "--sender", "s@example.jp", "--to", "a@example.jp"]

    long = mamoru(*base, "--subject", "あ" * (MAX_SUBJECT + 1), "--body-file", body)
    assert long.returncode == 2, long.stderr
    assert f"件名は {MAX_SUBJECT} 文字まで" in long.stderr and "Traceback" not in long.stderr
    wrong = mamoru(*base, "--subject", "件名", "--body-file", sjis)
    assert wrong.returncode == 2, wrong.stderr
    assert "UTF-8 のテキストではありません" in wrong.stderr and "Shift_JIS" in wrong.stderr
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM broadcasts") == 0
    finally:
        await conn.close()
    fits = mamoru(*base, "--subject", "あ" * MAX_SUBJECT, "--body-file", body)
    assert fits.returncode == 0, fits.stderr
