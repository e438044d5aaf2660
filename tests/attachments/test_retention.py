"""Files at rest: sealed (no plain name or content in the table files), deleted for good after
keep_days (`mamoru attachments prune`) and with a school's purge (`mamoru contacts purge`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from commands import ROOT, config_file

from engine.staff import attachments

from .conftest import PDF, FilesWorld

SECRET_TEXT = "山田太郎 アレルギー: そば 電話 090-1234-5678".encode()
SECRET_NAME = "山田太郎さんの診断書.txt"


async def test_no_plain_name_or_content_in_the_database_files(fw: FilesWorld) -> None:
    # One file small enough to stay in the row, one large enough to go out of line (TOAST).
    made = await fw.send(await fw.w.login("admin1"), [
        (SECRET_NAME, SECRET_TEXT, "text/plain"), ("名簿.csv", SECRET_TEXT * 500, "text/csv"),
    ])
    assert made.status_code == 201
    pool = fw.w.api.staff.pool
    secrets = [SECRET_TEXT, SECRET_NAME.encode(), "アレルギー".encode()]
    # Every column as PostgreSQL prints it (bytea as hex: search the hex too).
    rows = await pool.fetch("SELECT t::text AS row FROM attachments t")
    dump = "\n".join(r["row"] for r in rows)
    for s in secrets:
        assert s.decode() not in dump and s.hex() not in dump
    # The table and its out-of-line (TOAST) storage, as files on disk.
    await pool.execute("CHECKPOINT")
    data_dir = Path(await pool.fetchval("SHOW data_directory"))
    if not os.access(data_dir, os.R_OK):
        pytest.skip("the test server's files are not readable here")
    toast = await pool.fetchval(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'attachments'::regclass"
    )
    assert await pool.fetchval(f"SELECT count(*) FROM {toast}") > 0  # the large one is there
    raw = b""
    for rel in ("attachments", toast):
        path = await pool.fetchval("SELECT pg_relation_filepath($1::regclass)", rel)
        raw += (data_dir / path).read_bytes()
    # The search works: the media type is stored as it is.
    assert b"text/plain; charset=UTF-8" in raw
    for s in secrets:
        assert s not in raw
    # And the file still opens for its recipient.
    delivery = (await fw.deliveries(made.json()["broadcast_id"]))["taro@docomo.ne.jp"]
    async with fw.client() as c:
        assert (await c.get(f"{fw.page(delivery)}/files/1")).content == SECRET_TEXT
        assert (await c.get(f"{fw.page(delivery)}/files/2")).content == SECRET_TEXT * 500


async def test_files_are_deleted_for_good_after_keep_days(fw: FilesWorld) -> None:
    made = (await fw.send(await fw.w.login("admin1"), [("a.pdf", PDF, "application/pdf")])).json()
    delivery = (await fw.deliveries(made["broadcast_id"]))["taro@docomo.ne.jp"]
    async with fw.client() as c:
        assert (await c.get(f"{fw.page(delivery)}/files/1")).status_code == 200
    pool = fw.w.api.staff.pool
    assert await attachments.prune(pool, fw.w.clock.now()) == 0
    fw.w.clock.advance(89 * 86400)
    assert await attachments.prune(pool, fw.w.clock.now()) == 0
    fw.w.clock.advance(2 * 86400)
    assert await attachments.prune(pool, fw.w.clock.now()) == 1
    assert await fw.w.count("SELECT count(*) FROM attachments") == 0
    assert await fw.w.count("SELECT count(*) FROM attachment_downloads") == 0
    # The broadcast itself stays (its deliveries are the record of who got the mail).
    assert await fw.w.count("SELECT count(*) FROM broadcasts") == 1
    async with fw.client(await fw.w.login("admin1")) as c:
        assert (await c.get(f"/api/staff/broadcasts/{made['broadcast_id']}/files")).json() == []


async def _run(*args: str | Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", *map(str, args)], capture_output=True,
        text=True, timeout=60, cwd=ROOT, env=env,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
async def test_purge_of_a_school_deletes_its_files_and_prune_is_a_command(
    fw: FilesWorld, tmp_path: Path
) -> None:
    sho1 = (await fw.send(await fw.w.login("admin1"), [("a.pdf", PDF, "application/pdf")]))
    sho2 = (await fw.send(await fw.w.login("admin2"), [("b.pdf", PDF, "application/pdf")],
                          audience={"classes": [fw.w.classes["sho2-3-1"]]}))
    assert sho1.status_code == sho2.status_code == 201
    cfg = config_file(tmp_path, fw.w.settings.database.url, "127.0.0.1:9",
                      people_key=fw.w.settings.people.key)
    code, out, err = await _run("attachments", "prune", "--config", cfg)
    assert code == 0, err
    assert "0 件削除しました" in out
    code, out, err = await _run("contacts", "purge", "--school", "sho1", "--yes", "--config", cfg)
    assert code == 0, err
    assert "添付資料 1 件" in out
    left = await fw.w.api.staff.pool.fetch("SELECT broadcast_id FROM attachments")
    assert [r["broadcast_id"] for r in left] == [sho2.json()["broadcast_id"]]
    assert await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.prune' AND detail = 'deleted=0'"
    ) == 1
