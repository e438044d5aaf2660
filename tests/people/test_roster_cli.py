"""The roster commands as an office runs them: export -> edit -> import (dry run with its
changes file, then for real), counts printed, the rate, one edit, one removal, a rename,
a class added and removed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from .test_cli import CSV, count, people_config, run, setup_schools


@pytest.mark.slow
async def test_export_edit_import_round_trip_and_single_changes(
    tmp_path: Path, db_url: str
) -> None:
    cfg = people_config(tmp_path, db_url)
    await setup_schools(cfg)
    data = tmp_path / "meibo.csv"
    data.write_bytes(CSV.encode("utf-16"))  # Excel's 「Unicode テキスト」 encoding
    code, out, err = await run("accounts", "import", data, "--confirmed", "-c", cfg)
    assert code == 0 and "追加 4 件" in out, err

    exported = tmp_path / "export.csv"
    code, _, err = await run("accounts", "export", "--school", "sho1", "--out", exported,
                             "-c", cfg)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(exported.read_text("utf-8-sig"))))
    assert rows[0][-1] == "登録状況" and {r[-1] for r in rows[1:]} == {"登録済み"}
    code, out, err = await run("accounts", "import", exported, "-c", cfg)
    assert code == 0 and "追加 0 件、更新 0 件、変更なし 3 件" in out, err

    # The office renames one child and deletes another row.
    rows[1][5] = "山田 太郎"
    edited = tmp_path / "edited.csv"
    edited.write_text("\r\n".join(",".join(r) for r in rows[:-1]) + "\r\n", "cp932")
    changes = tmp_path / "changes.csv"
    code, _, err = await run("accounts", "import", edited, "--close-missing", "--dry-run",
                             "--changes", changes, "-c", cfg)
    assert code == 0 and "更新 1 件" in err and "終了 1 件" in err, err
    listed = list(csv.reader(io.StringIO(changes.read_text("utf-8-sig"))))
    assert [r[1] for r in listed[1:]] == ["変更", "終了"] and listed[1][9:] == [
        "山田太郎", "山田 太郎"
    ]
    assert await count(db_url, "accounts WHERE state = 'active'") == 4
    code, out, err = await run("accounts", "import", edited, "--close-missing", "-c", cfg)
    assert code == 0 and "更新 1 件" in out and "終了 1 件" in out, err
    assert await count(db_url, "accounts WHERE state = 'active'") == 3

    code, out, err = await run("accounts", "rate", "--school", "sho1", "-c", cfg)
    assert code == 0 and "登録率" in out and "100.0%" in out, err
    code, out, err = await run("contacts", "remove", "haha@ezweb.ne.jp", "-c", cfg)
    assert code == 0 and "連絡先を削除しました" in out, err
    code, out, err = await run("schools", "rename", "sho2", "みどり小学校", "-c", cfg)
    assert code == 0 and "みどり小学校" in out, err
    # Classes (学年と組): add one, a class with a child is not removed, an empty one is.
    code, out, err = await run("schools", "classes", "add", "sho2", "3年", "２組", "-c", cfg)
    assert code == 0 and "3年2組" in out, err
    code, _, err = await run("schools", "classes", "remove", "sho2", "3", "1", "-c", cfg)
    assert code == 2 and "1 人のアカウントがあるため削除できません" in err
    code, out, err = await run("schools", "classes", "remove", "sho2", "3", "2", "-c", cfg)
    assert code == 0 and "組を削除しました" in out, err
    assert await count(db_url, "audit_log WHERE action LIKE 'class.%'") == 3
    code, _, err = await run("accounts", "edit", "999999", "--name", "x", "-c", cfg)
    assert code == 2 and "アカウント 999999 はありません" in err
    assert await count(db_url, "audit_log WHERE action LIKE 'accounts.%'") >= 4
