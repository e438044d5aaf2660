"""`mamoru staff` and `mamoru audit` as an operator runs them; the audit chain under tampering."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from commands import config_file, run_mamoru

from engine.platform.sealing import new_key_text
from engine.staff import audit

from .conftest import PASSWORD, World


def people_config(tmp_path: Path, db_url: str, key: str | None = None) -> Path:
    return config_file(tmp_path, db_url, "127.0.0.1:9", people_key=key or new_key_text())


run = run_mamoru


@pytest.mark.slow
async def test_first_account_then_disable_reset_and_list(tmp_path: Path, db_url: str) -> None:
    cfg = people_config(tmp_path, db_url)
    for args in (("schools", "add", "city", "みどり市教育委員会", "--kind", "教育委員会"),
                 ("schools", "add", "sho1", "第一小学校", "--kind", "小学校")):
        code, _, err = await run(*args, "-c", cfg)
        assert code == 0, err
    code, out, err = await run(
        "staff", "add", "Kyouiku.Taro", "--name", "教育 太郎", "--role", "教育委員会",
        "--password-stdin", "-c", cfg, stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    assert "登録しました: kyouiku.taro" in out
    code, _, err = await run(
        "staff", "add", "kyouiku.taro", "--name", "同じ ID", "--role", "board",
        "--password-stdin", "-c", cfg, stdin=PASSWORD + "\n",
    )
    assert code == 2 and "すでに使われています" in err
    code, _, err = await run(
        "staff", "add", "short", "--name", "短い", "--role", "school", "--school", "sho1",
        "--password-stdin", "-c", cfg, stdin="short\n",
    )
    assert code == 2 and "12 文字以上" in err
    roster = tmp_path / "roster.csv"
    roster.write_text("学校,学年,組,番号,氏名,連絡先1\nsho1,3,1,1,山田太郎,taro@docomo.ne.jp\n",
                      encoding="utf-8")
    code, _, err = await run("accounts", "import", roster, "--confirmed", "-c", cfg)
    assert code == 0, err
    code, out, err = await run(
        "staff", "add", "suzuki", "--name", "鈴木 先生", "--role", "教員", "--school", "sho1",
        "--class", "3-1", "--password-stdin", "-c", cfg, stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    code, _, err = await run(
        "staff", "add", "tanaka", "--name", "田中 先生", "--role", "teacher", "--school", "sho1",
        "--class", "5-2", "--password-stdin", "-c", cfg, stdin=PASSWORD + "\n",
    )
    assert code == 2 and "5 年生は登録されていません" in err
    code, _, err = await run(
        "staff", "reset-password", "kyouiku.taro", "--password-stdin", "-c", cfg,
        stdin="another long password\n",
    )
    assert code == 0, err
    code, _, err = await run("staff", "disable", "kyouiku.taro", "-c", cfg)
    assert code == 0, err
    code, out, _ = await run("staff", "list", "-c", cfg)
    assert code == 0 and "kyouiku.taro" in out and "無効" in out and "suzuki" in out
    code, out, err = await run("audit", "verify", "-c", cfg)
    assert code == 0, err
    # Two schools, two staff added, the import, the reset and the disabling: seven changes.
    assert "改ざんされていません: 7 件" in out
    export = tmp_path / "audit.csv"
    code, _, err = await run("audit", "export", "--out", export, "-c", cfg)
    assert code == 0, err
    data = export.read_bytes()
    assert data.startswith("\ufeff".encode()) and "staff.disable" in data.decode("utf-8-sig")


@pytest.mark.slow
async def test_audit_verify_names_the_altered_and_the_missing_entry(
    world: World, tmp_path: Path
) -> None:
    token = await world.login("admin1")  # entry 1
    async with world.client(token) as c:
        for _ in range(3):  # entries 2-4
            await c.post("/api/staff/broadcasts", json={
                "sender": "sho1@example.jp", "subject": "お知らせ", "body": "本文",
                "audience": {"schools": [world.orgs["sho1"]]}})
    cfg = people_config(tmp_path, world.settings.database.url, world.settings.people.key)
    # The API's stores used a generated audit key kept in the database: the CLI finds it.
    code, out, err = await run("audit", "verify", "-c", cfg)
    assert code == 0, err
    assert "4 件" in out
    conn = await asyncpg.connect(world.settings.database.url)
    try:
        await conn.execute("UPDATE audit_log SET result = 'denied' WHERE seq = 3")
        code, out, _ = await run("audit", "verify", "-c", cfg)
        assert code == 3
        assert "3 番" in out and "書き換えられています" in out and "altered" in out
        await conn.execute("UPDATE audit_log SET result = 'ok' WHERE seq = 3")
        await conn.execute("DELETE FROM audit_log WHERE seq = 2")
        code, out, _ = await run("audit", "verify", "-c", cfg)
        assert code == 3 and "2 番" in out and "missing" in out
    finally:
        await conn.close()


async def test_pruning_keeps_the_chain_verifiable(world: World) -> None:
    st = world.api.staff
    await world.login("admin1")
    await world.login("admin2")
    world.clock.advance(100 * 86400)
    await world.login("board")
    removed = await audit.prune(st.pool, st.audit_key, st.now(), timedelta(days=90))
    assert removed == 2
    v = await audit.verify(st.pool, st.audit_key)
    assert v.ok and v.checked == 1
    with pytest.raises(Exception, match="90"):
        await audit.prune(st.pool, st.audit_key, st.now(), timedelta(days=30))


async def test_board_reads_and_downloads_the_audit_log(world: World) -> None:
    board = await world.login("board")
    async with world.client(board) as c:
        await c.post("/api/staff/login", json={"login": "admin1", "password": "wrong pw!!"})
        page = (await c.get("/api/staff/audit", params={"result": "denied"})).json()
        r = await c.get("/api/staff/audit.csv")
        verify = (await c.get("/api/staff/audit/verify")).json()
    assert page["total"] == 1
    denied = page["items"][0]
    assert denied["action"] == "login" and denied["actor_name"] == "admin1"
    assert denied["address"] == "127.0.0.1"
    assert r.content.startswith("\ufeff".encode())
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("番号,日時,操作者の種別")
    assert "権限なし・認証失敗" in text
    assert verify["ok"] is True and verify["first_bad"] is None
