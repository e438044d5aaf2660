"""Backup and restore end to end (issue 23): a broadcast backed up mid-delivery is restored into
a new, empty database on a "new host" (other key paths, no keys there), and every delivery,
contact, audit entry and personal link works with the restored keys; refusals change nothing."""

from __future__ import annotations

import base64
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from commands import config_file, run_mamoru
from conftest import scratch_database
from support import TEST_LINK_KEY_FILE, TEST_PEOPLE_KEY, make_settings, opened_rows

from engine.delivery.context import Engine
from engine.message.links import PAGE, LinkSigner
from engine.people import OrgKind, People
from engine.people.accounts import plan_import, write_import
from engine.people.csv_import import parse_rows
from engine.people.directory import add_organisation
from engine.platform.backup_files import archives
from engine.platform.config import load_settings
from engine.platform.link_key import link_secret
from engine.platform.sealing import ADDRESS
from engine.queue import NewBroadcast
from engine.staff import audit
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import CLI_PRINCIPAL

pytestmark = pytest.mark.slow

ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1,グループ\n"
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,\n"
    "sho1,3,1,2,山田花子,hanako@ezweb.ne.jp,\n"
    "sho1,4,1,1,鈴木一郎,ichiro@example.jp,\n"
)
DELIVERY_SQL = (
    "SELECT id, broadcast_id, state, attempts, last_code, recipient_sealed FROM deliveries "
    "ORDER BY id"
)


def host1_config(tmp_path: Path, db_url: str, target: str) -> Path:
    """The original host: the tests' usual configuration, with a backup key and folder."""
    cfg = config_file(tmp_path, db_url, target)
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write(
            f'\n[backup]\nkey_file = "{tmp_path / "offsite" / "backup.key"}"\n'
            f'dir = "{tmp_path / "backups"}"\nkeep_daily = 7\n'
        )
    return cfg


def new_host_config(folder: Path, db_url: str, target: str, backup_key: Path) -> Path:
    """A host that never ran mamoru: key files (none there yet) instead of keys in the file;
    an empty ``db_url``: the embedded database in ``folder``/pgdata, not made yet."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = folder / "keys"
    cfg = folder / "mamoru.toml"
    where = f'url = "{db_url}"' if db_url else f'data_dir = "{folder / "pgdata"}"'
    cfg.write_text(
        f"""
[database]
{where}
pool_min = 1
pool_max = 4
[queue]
poll_interval = "50ms"
retry_base = "50ms"
retry_max = "200ms"
[delivery]
connect_timeout = "2s"
command_timeout = "2s"
data_timeout = "2s"
[routing.transport]
"*" = "{target}"
[metrics]
listen = ""
[http]
listen = ""
[shaping]
enabled = false
[inbound]
listen = ""
[dkim]
allow_unsigned = true
[people]
key_file = "{keys / 'people.key'}"
link_key_file = "{keys / 'link.key'}"
[staff]
audit_key_file = "{keys / 'audit.key'}"
audit_checkpoints = "{folder / 'audit.checkpoints'}"
[backup]
key_file = "{backup_key}"
dir = "{folder / 'backups'}"
""",
        encoding="utf-8",
    )
    return cfg


def file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


async def relation_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        ))
    finally:
        await conn.close()


async def populate(engine: Engine) -> People:
    people = await People.open(engine.pool, engine.settings.people, engine.clock)
    await add_organisation(people, OrgKind.BOARD, "city", "みどり市教育委員会")
    await add_organisation(people, OrgKind.ELEMENTARY, "sho1", "第一小学校")
    plan = await plan_import(people, parse_rows(ROSTER.encode("utf-8")))
    assert plan.errors == []
    await write_import(people, plan, True)
    key = await load_audit_key(engine.pool, engine.settings.staff)
    for n in range(3):
        await audit.record(engine.pool, key, engine.clock.now(), CLI_PRINCIPAL,
                           "test.action", f"object {n}")
    return people


async def snapshot(pool: asyncpg.Pool, people: People) -> dict[str, Any]:
    deliveries = await opened_rows(pool, people.sealer, DELIVERY_SQL)
    contacts = sorted(
        people.sealer.open(bytes(r["address_sealed"]), ADDRESS)
        for r in await pool.fetch("SELECT address_sealed FROM contacts")
    )
    audit_rows = [tuple(r) for r in await pool.fetch(
        "SELECT seq, action, object, mac FROM audit_log ORDER BY seq"
    )]
    return {"deliveries": deliveries, "contacts": contacts, "audit": audit_rows}


async def test_backup_mid_broadcast_restores_everything_on_a_new_host(
    tmp_path: Path, db_url: str, server_url: str, sink: Any
) -> None:
    cfg1 = host1_config(tmp_path, db_url, sink.address)
    code, out, err = await run_mamoru("backup", "--new-key", "--config", cfg1)
    assert code == 0, err
    backup_key = tmp_path / "offsite" / "backup.key"
    assert stat.S_IMODE(backup_key.stat().st_mode) == 0o600
    first_key = backup_key.read_bytes()
    code, _, err = await run_mamoru("backup", "--new-key", "--config", cfg1)
    assert code == 1 and "上書きしません" in err
    assert backup_key.read_bytes() == first_key

    settings1 = make_settings(db_url)
    engine = await Engine.open(settings1)
    try:
        people = await populate(engine)
        now = engine.clock.now()
        done = await engine.queue.enqueue(NewBroadcast(
            "school@example.jp", "台風のため休校", "本日は休校です。",
            ["a1@example.jp", "a2@example.jp", "reject1@example.jp"],
        ), now, 86400)
        # The first broadcast goes out for real (two delivered, one refused) ...
        code, _, err = await run_mamoru("serve", "--exit-when-idle", "--config", cfg1)
        assert code == 0, err
        # ... the second is mid-delivery: two taken by a runner that died (its lease ran
        # out), the rest still queued.
        second = await engine.queue.enqueue(NewBroadcast(
            "school@example.jp", "不審者情報", "下校時は注意してください。",
            [f"b{n}@example.jp" for n in range(1, 7)],
        ), now, 86400)
        claimed = await engine.queue.claim("dead-runner", 2, now, 300)
        assert len(claimed) == 2
        await engine.pool.execute(
            "UPDATE deliveries SET next_attempt_at = now() - interval '1 minute' "
            "WHERE state = 'sending'"
        )
        secret = await link_secret(engine.pool, settings1)
        page_token = LinkSigner(secret).token(PAGE, claimed[0].id, now + timedelta(days=1))

        # Eight archives of older days: with keep_daily = 7 the two oldest must go.
        backups = tmp_path / "backups"
        backups.mkdir()
        for day in range(1, 9):
            (backups / f"mamoru-202601{day:02d}-023000.backup").write_bytes(b"old")
        before = await snapshot(engine.pool, people)
        code, out, err = await run_mamoru("backup", "--config", cfg1)
        assert code == 0, err
        # The backup's own entry follows its dump, so it is in this database's log only.
        logged = await engine.pool.fetchrow(
            "SELECT action, object, result FROM audit_log ORDER BY seq DESC LIMIT 1"
        )
    finally:
        await engine.close()

    kept = [a.path.name for a in archives(backups)]
    assert len(kept) == 7
    assert "mamoru-20260101-023000.backup" not in kept
    assert "mamoru-20260102-023000.backup" not in kept
    archive = archives(backups)[-1].path
    assert archive.name in out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not list(backups.glob(".*.tmp"))
    data = archive.read_bytes()
    # Encrypted: neither the dump's signature nor the people key shows.
    assert b"PGDMP" not in data and TEST_PEOPLE_KEY.encode() not in data
    states = {r["state"] for r in before["deliveries"]}
    assert {"delivered", "failed", "sending", "queued"} <= states
    assert tuple(logged) == ("backup.create", archive.name, "ok")
    assert len(before["contacts"]) == 3

    host2 = tmp_path / "host2"
    async with scratch_database(server_url, "mamoru_restore", template=None) as new_url:
        cfg2 = new_host_config(host2, new_url, sink.address, backup_key)
        code, out, err = await run_mamoru("restore", archive, "--config", cfg2)
        assert code == 0, err
        assert "改ざんされていません" in out
        for name in ("people.key", "link.key", "audit.key"):
            key_file = host2 / "keys" / name
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        restored_people_key = base64.b64decode((host2 / "keys" / "people.key").read_text())
        assert restored_people_key == base64.b64decode(TEST_PEOPLE_KEY)
        assert (host2 / "keys" / "link.key").read_bytes() == file_bytes(TEST_LINK_KEY_FILE)

        settings2 = load_settings(cfg2, environ={})
        engine2 = await Engine.open(settings2)  # checks the people key's fingerprint
        try:
            people2 = await People.open(engine2.pool, settings2.people, engine2.clock)
            after = await snapshot(engine2.pool, people2)
            assert after["deliveries"] == before["deliveries"]
            assert after["contacts"] == before["contacts"]
            assert after["audit"][: len(before["audit"])] == before["audit"]
            assert [r[1] for r in after["audit"][len(before["audit"]):]] == ["backup.restore"]
            key2 = await load_audit_key(engine2.pool, settings2.staff)
            verified = await audit.verify(engine2.pool, key2)
            assert verified.ok and verified.checked == len(before["audit"]) + 1
            secret2 = await link_secret(engine2.pool, settings2)  # checks the fingerprint
            assert LinkSigner(secret2).verify(PAGE, page_token, now) == claimed[0].id

            # The restored queue finishes the broadcast: every recipient gets it.
            code, _, err = await run_mamoru("serve", "--exit-when-idle", "--config", cfg2)
            assert code == 0, err
            rows = await engine2.pool.fetch(
                "SELECT state FROM deliveries WHERE broadcast_id = $1", second
            )
            assert [r["state"] for r in rows] == ["delivered"] * 6
        finally:
            await engine2.close()
    received = {r.rcpt for r in sink.handler.received}
    assert {f"b{n}@example.jp" for n in range(1, 7)} <= received
    assert done > 0

    # A new host on the embedded database: restore makes it (no `mamoru init` first).
    cfg3 = new_host_config(tmp_path / "host3", "", sink.address, backup_key)
    try:
        code, out, err = await run_mamoru("restore", archive, "--config", cfg3)
        assert code == 0, err
        assert "改ざんされていません" in out
        code, out, err = await run_mamoru("db", "status", "--config", cfg3)
        assert code == 0 and str(tmp_path / "host3" / "pgdata") in out, (out, err)
    finally:
        await run_mamoru("db", "stop", "--config", cfg3)
