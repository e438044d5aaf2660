"""Disposal at contract end (issue 23): `mamoru contacts purge --all` deletes every personal datum
and every staff account (sessions, API keys, drafts) in one transaction with its record in the
audit log, writes the record as a PDF, and the audit chain still verifies. A wrong confirmation
or a failure half-way deletes nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from commands import config_file, run_mamoru
from pdf_tools import fonts_of, need, pages_text
from security.conftest import Tenants, tenants  # noqa: F401  (the fixture, reused)
from staff.conftest import world  # noqa: F401  (tenants' fixture)

from cli.audit_trail import cli_actor
from engine.staff import audit
from engine.staff.disposal import ACTION, dispose_all

PERSONAL = ("accounts", "contacts", "contact_accounts", "staff", "staff_sessions", "api_keys",
            "staff_classes", "staff_groups", "registration_requests")


async def _counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in PERSONAL}


def _config(tmp_path: Path, t: Tenants) -> Path:
    cfg = config_file(tmp_path, t.w.settings.database.url, "127.0.0.1:9",
                      people_key=t.w.settings.people.key)
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "mamoru-20261201-023000.backup").write_bytes(b"sealed")
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[backup]\ndir = "{backups}"\n')
    return cfg


async def test_purge_all_disposes_of_everything_with_a_record(
    tenants: Tenants, tmp_path: Path  # noqa: F811
) -> None:
    need("pdffonts", "pdftotext")
    pool = tenants.w.api.staff.pool
    before = await _counts(pool)
    assert before["staff"] == 7 and before["api_keys"] == 4 and before["staff_sessions"] >= 6
    drafts = await pool.fetchval("SELECT count(*) FROM saved_messages WHERE kind = 'draft'")
    owned = await pool.fetchval("SELECT count(*) FROM broadcast_owners")
    before_broadcasts = await pool.fetchval("SELECT count(*) FROM broadcasts")
    record = tmp_path / "haiki.pdf"
    code, out, err = await run_mamoru(
        "contacts", "purge", "--all", "--record", record, "-c", _config(tmp_path, tenants),
        stdin="すべて削除\n")
    assert code == 0, err + out
    assert f"職員アカウント {before['staff']} 件" in out
    assert f"API キー {before['api_keys']} 件" in out
    assert "バックアップが 1 件残っています" in out
    assert "監査ログは改ざんされていません" in out
    assert str(record) in out

    assert set((await _counts(pool)).values()) == {0}
    assert await pool.fetchval("SELECT count(*) FROM saved_messages WHERE kind = 'draft'") == 0
    # Broadcasts go too, with everything hanging off them: subjects and bodies can name
    # children.
    broadcasts = before_broadcasts
    assert broadcasts > 0 and owned > 0
    for table in ("broadcasts", "broadcast_owners", "deliveries", "delivery_attempts",
                  "saved_messages"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    entry = await pool.fetchrow(
        "SELECT seq, detail, result FROM audit_log WHERE action = $1", ACTION)
    assert entry["result"] == "ok"
    for part in ("物理削除", "論理削除ではない", f"staff={before['staff']}",
                 f"accounts={before['accounts']}", f"drafts={drafts}", "backups_left=1",
                 f"broadcasts={broadcasts}"):
        assert part in entry["detail"], part
    found = await audit.verify(pool, tenants.w.settings.staff.audit_key.encode())
    assert found.ok, found.summary_ja()

    assert record.stat().st_mode & 0o077 == 0
    assert all(f.embedded and "NotoSansJP" in f.name for f in fonts_of(record))
    text = "".join(pages_text(record))
    for part in ("個人情報の廃棄記録", "廃棄した日時", "物理削除", "論理削除", "職員アカウント",
                 f"監査ログの記録番号: {entry['seq']}", "mamoru-20261201-023000.backup",
                 "バックアップ鍵"):
        assert part in text, part


async def test_a_wrong_confirmation_deletes_nothing(
    tenants: Tenants, tmp_path: Path  # noqa: F811
) -> None:
    pool = tenants.w.api.staff.pool
    before = await _counts(pool)
    record = tmp_path / "haiki.pdf"
    code, _, err = await run_mamoru(
        "contacts", "purge", "--all", "--record", record, "-c", _config(tmp_path, tenants),
        stdin="はい\n")
    assert code == 2 and "何も削除していません" in err
    assert await _counts(pool) == before and not record.exists()
    # A record file in the way is refused before anything happens.
    record.write_bytes(b"older record")
    code, _, err = await run_mamoru(
        "contacts", "purge", "--all", "--yes", "--record", record, "-c", tmp_path / "mamoru.toml")
    assert code == 2 and "既にあります" in err
    assert await _counts(pool) == before and record.read_bytes() == b"older record"


async def test_a_failure_half_way_deletes_nothing(tenants: Tenants) -> None:  # noqa: F811
    w = tenants.w
    pool = w.api.staff.pool
    before = await _counts(pool)
    entries = await pool.fetchval("SELECT count(*) FROM audit_log")
    # The last step (the staff table) fails: accounts, contacts and files deleted before it
    # in the same transaction come back.
    await pool.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$")
    await pool.execute(
        "CREATE TRIGGER refuse BEFORE DELETE ON staff FOR EACH STATEMENT EXECUTE FUNCTION refuse()")
    with pytest.raises(asyncpg.RaiseError, match="refused by the test"):
        await dispose_all(w.api.people, w.settings, cli_actor())
    assert await _counts(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == entries
