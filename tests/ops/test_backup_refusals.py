"""Restores that must be refused change nothing: a non-empty database, an altered, cut-short or
wrongly keyed archive, a different key file already in place. And serve's daily backup:
its schedule, gauges, audit entries and generations."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from commands import run_mamoru
from conftest import scratch_database
from prometheus_client import REGISTRY
from support import make_settings

from engine.platform.backup_archive import new_backup_key
from engine.platform.backup_files import Archive, archives, to_prune
from engine.platform.clock import JST, FakeClock
from engine.staff.backup_keeper import BackupKeeper, next_run

from .test_backup_restore import host1_config, new_host_config, relation_count

pytestmark = pytest.mark.slow


def damaged(source: Path, target: Path, how: str) -> Path:
    data = bytearray(source.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-40:]
    target.write_bytes(bytes(data))
    return target


async def test_refused_restores_change_nothing(
    tmp_path: Path, db_url: str, server_url: str
) -> None:
    cfg1 = host1_config(tmp_path, db_url, "127.0.0.1:1")
    assert (await run_mamoru("backup", "--new-key", "--config", cfg1))[0] == 0
    code, _, err = await run_mamoru("backup", "--config", cfg1)
    assert code == 0, err
    archive = archives(tmp_path / "backups")[-1].path
    backup_key = tmp_path / "offsite" / "backup.key"

    # A database in use (migrated, with an audit log) is refused and left as it was.
    async with scratch_database(server_url) as full_url:
        relations = await relation_count(full_url)
        host = tmp_path / "full"
        cfg = new_host_config(host, full_url, "127.0.0.1:1", backup_key)
        code, _, err = await run_mamoru("restore", archive, "--config", cfg)
        assert code == 1
        assert "空ではありません" in err
        assert await relation_count(full_url) == relations
        assert not (host / "keys").exists()

    async with scratch_database(server_url, "mamoru_empty", template=None) as empty_url:
        other_key = tmp_path / "other.key"
        new_backup_key(other_key)
        cases = [
            (damaged(archive, tmp_path / "flipped.backup", "flip"), None, "改ざん"),
            (damaged(archive, tmp_path / "cut.backup", "cut"), None, "改ざん"),
            (archive, other_key, "鍵が違う"),
        ]
        for n, (candidate, key, message) in enumerate(cases):
            host = tmp_path / f"host{n}"
            cfg = new_host_config(host, empty_url, "127.0.0.1:1", backup_key)
            extra = ["--key-file", str(key)] if key else []
            code, _, err = await run_mamoru("restore", candidate, "--config", cfg, *extra)
            assert code == 1, (candidate, err)
            assert message in err
            assert await relation_count(empty_url) == 0
            assert not (host / "keys").exists()

        # A different people key already where the archive's would go: never overwritten.
        host = tmp_path / "conflict"
        cfg = new_host_config(host, empty_url, "127.0.0.1:1", backup_key)
        (host / "keys").mkdir()
        theirs = base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
        (host / "keys" / "people.key").write_text(theirs)
        code, _, err = await run_mamoru("restore", archive, "--config", cfg)
        assert code == 1
        assert "上書きしません" in err
        assert (host / "keys" / "people.key").read_text() == theirs
        assert sorted(p.name for p in (host / "keys").iterdir()) == ["people.key"]
        assert await relation_count(empty_url) == 0

        # The same archive restores there once the conflict is gone (the refusals left the
        # database empty).
        (host / "keys" / "people.key").unlink()
        code, out, err = await run_mamoru("restore", archive, "--config", cfg)
        assert code == 0, err
        assert "改ざんされていません" in out


def test_generations_keep_the_newest_of_each_of_the_newest_days() -> None:
    def at(day: int, hour: int) -> Archive:
        moment = datetime(2026, 11, day, hour, tzinfo=JST)
        return Archive(Path(f"mamoru-202611{day:02d}-{hour:02d}0000.backup"), moment)

    found = [at(day, 2) for day in range(1, 11)] + [at(10, 9), at(10, 15)]
    found.sort(key=lambda a: a.taken_at)
    removed = {a.path.name for a in to_prune(found, 7)}
    assert removed == {
        "mamoru-20261101-020000.backup", "mamoru-20261102-020000.backup",
        "mamoru-20261103-020000.backup",
        # the 10th is kept by its newest archive only
        "mamoru-20261110-020000.backup", "mamoru-20261110-090000.backup",
    }
    assert to_prune(found[:5], 7) == []


def test_next_run_is_the_next_daily_time_in_japan() -> None:
    # 17:29 UTC is 02:29 in Japan: the backup is a minute away, the same Japanese day.
    assert next_run(datetime(2026, 11, 1, 17, 29, tzinfo=UTC), "02:30") == datetime(
        2026, 11, 2, 2, 30, tzinfo=JST
    )
    assert next_run(datetime(2026, 11, 1, 17, 30, tzinfo=UTC), "02:30") == datetime(
        2026, 11, 3, 2, 30, tzinfo=JST
    )


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_daily_backup_sets_gauges_audits_and_logs_failures(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "backup.key"
    new_backup_key(key)
    folder = tmp_path / "backups"
    settings = make_settings(db_url, backup={
        "key_file": str(key), "dir": str(folder), "daily_at": "02:30", "keep_daily": 7,
    })
    clock = FakeClock(datetime(2026, 11, 1, 17, 30, tzinfo=UTC))
    from engine.delivery.context import Engine

    engine = await Engine.open(settings, clock)
    try:
        keeper = BackupKeeper(engine.pool, settings, clock)
        for _ in range(9):
            made = await keeper.backup_once()
            assert made is not None
            clock.advance(timedelta(days=1).total_seconds())
        assert gauge("mamoru_backup_failed") == 0
        assert gauge("mamoru_backup_last_success_timestamp") == made.at.timestamp()
        assert len(archives(folder)) == 7
        # /readyz reads the outcome from any process.
        assert (await engine.pool.fetchval(
            "SELECT ok FROM service_status WHERE name = 'backup'")) is True
        rows = await engine.pool.fetch(
            "SELECT action, result, actor_name FROM audit_log ORDER BY seq"
        )
        assert [tuple(r) for r in rows] == [
            ("backup.create", "ok", "serve (daily backup)")
        ] * 9

        key.unlink()  # the key went missing: the next backup fails loudly
        broken = BackupKeeper(engine.pool, settings, clock)
        with caplog.at_level(logging.ERROR, logger="engine.staff.backup_keeper"):
            assert await broken.backup_once() is None
        assert gauge("mamoru_backup_failed") == 1
        assert any("バックアップに失敗しました" in r.getMessage() for r in caplog.records)
        last = await engine.pool.fetchrow(
            "SELECT action, result FROM audit_log ORDER BY seq DESC LIMIT 1"
        )
        assert tuple(last) == ("backup.create", "failed")
        assert (await engine.pool.fetchval(
            "SELECT ok FROM service_status WHERE name = 'backup'")) is False
        assert len(archives(folder)) == 7
    finally:
        await engine.close()
    # The settings check refuses a keep_daily outside 7-31.
    from engine.platform.config import load_settings
    from engine.platform.errors import ConfigError

    with pytest.raises(ConfigError, match="keep_daily"):
        load_settings(None, environ={"MAMORU_BACKUP_KEEP_DAILY": "40"})
