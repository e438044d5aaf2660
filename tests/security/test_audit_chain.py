"""The audit log as evidence: its key outside the database, every truncation and re-anchoring
detected, checkpoints outside the database, and serve's daily check raising the alarm."""

from __future__ import annotations

import logging
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.platform.errors import ConfigError
from engine.platform.metrics import AUDIT_CHAIN_INTACT
from engine.staff import audit
from engine.staff.audit_checkpoints import verify_all, write_checkpoint
from engine.staff.audit_keeper import AuditKeeper
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import CLI_PRINCIPAL

KEY = b"audit-key-for-these-tests-32byte"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def _entries(engine: Engine, n: int, start: datetime = NOW, key: bytes = KEY) -> None:
    for i in range(n):
        await audit.record(engine.pool, key, start + timedelta(minutes=i), CLI_PRINCIPAL,
                           "broadcast.send", f"broadcast {i}")


# The key ------------------------------------------------------------------------------------

async def test_key_file_is_made_0600_and_nothing_is_kept_in_the_database(
    engine: Engine, tmp_path: Path
) -> None:
    staff = replace(engine.settings.staff, audit_key="",
                    audit_key_file=str(tmp_path / "keys" / "audit.key"))
    key = await load_audit_key(engine.pool, staff)
    path = tmp_path / "keys" / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32
    assert await load_audit_key(engine.pool, staff) == key
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM mamoru_secrets WHERE name = 'audit'") == 0


async def test_a_key_kept_in_the_database_moves_to_the_file_and_old_entries_verify(
    engine: Engine, tmp_path: Path
) -> None:
    old = "ab" * 32
    await engine.pool.execute(
        "INSERT INTO mamoru_secrets (name, value) VALUES ('audit', $1)", old)
    await _entries(engine, 3, key=old.encode("ascii"))
    staff = replace(engine.settings.staff, audit_key="",
                    audit_key_file=str(tmp_path / "audit.key"))
    key = await load_audit_key(engine.pool, staff)
    assert key == old.encode("ascii")
    assert (await audit.verify(engine.pool, key)).ok
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM mamoru_secrets WHERE name = 'audit'") == 0
    assert await load_audit_key(engine.pool, staff) == key


async def test_a_key_file_that_differs_from_the_database_key_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    staff = replace(engine.settings.staff, audit_key="",
                    audit_key_file=str(tmp_path / "audit.key"))
    await load_audit_key(engine.pool, staff)
    await engine.pool.execute(
        "INSERT INTO mamoru_secrets (name, value) VALUES ('audit', $1)", "cd" * 32)
    with pytest.raises(ConfigError, match="鍵"):
        await load_audit_key(engine.pool, staff)
    # Nothing was deleted: the operator can still put the right file in place.
    assert await engine.pool.fetchval(
        "SELECT count(*) FROM mamoru_secrets WHERE name = 'audit'") == 1


async def test_a_chain_rewritten_without_the_key_does_not_verify(engine: Engine) -> None:
    await _entries(engine, 4)
    await engine.pool.execute("DELETE FROM audit_log")
    # Someone who can write the database rewrites every entry with a key of their own.
    await _entries(engine, 4, key=b"x" * 32)
    found = await audit.verify(engine.pool, KEY)
    assert not found.ok and found.first_bad == 1


# Head truncation ----------------------------------------------------------------------------

async def test_removing_the_oldest_entries_shows(engine: Engine) -> None:
    await _entries(engine, 5)
    await engine.pool.execute("DELETE FROM audit_log WHERE seq <= 2")
    found = await audit.verify(engine.pool, KEY)
    assert not found.ok and found.first_bad == 1 and "missing" in found.problem


async def test_a_new_anchor_without_the_key_shows(engine: Engine) -> None:
    await _entries(engine, 5)
    row = await engine.pool.fetchrow("SELECT seq, mac FROM audit_log WHERE seq = 2")
    await engine.pool.execute("DELETE FROM audit_log WHERE seq <= 2")
    # Unsealed, as a database writer without the key must leave it ...
    await engine.pool.execute(
        "INSERT INTO audit_anchor (id, seq, mac) VALUES (true, $1, $2)", row["seq"], row["mac"])
    found = await audit.verify(engine.pool, KEY)
    assert not found.ok and "not sealed" in found.problem
    # ... or sealed with a key of their own.
    await engine.pool.execute("UPDATE audit_anchor SET seal = $1",
                              audit.anchor_seal(b"y" * 32, row["seq"], bytes(row["mac"])))
    assert not (await audit.verify(engine.pool, KEY)).ok


async def test_moving_a_genuine_anchor_further_shows(engine: Engine) -> None:
    await _entries(engine, 3, start=NOW - timedelta(days=200))
    await _entries(engine, 3)
    assert await audit.prune(engine.pool, KEY, NOW, timedelta(days=100)) == 3
    assert (await audit.verify(engine.pool, KEY)).ok
    # Drop one more old entry and move the anchor's numbers onto it, seal and all.
    row = await engine.pool.fetchrow("SELECT seq, mac FROM audit_log WHERE seq = 4")
    await engine.pool.execute("DELETE FROM audit_log WHERE seq = 4")
    await engine.pool.execute("UPDATE audit_anchor SET seq = $1, mac = $2",
                              row["seq"], row["mac"])
    assert not (await audit.verify(engine.pool, KEY)).ok


# Tail truncation: checkpoints ---------------------------------------------------------------

async def test_removing_the_newest_entries_shows_against_a_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    points = tmp_path / "audit.checkpoints"
    await _entries(engine, 6)
    written = await write_checkpoint(engine.pool, KEY, points, NOW)
    assert written is not None and written.seq == 6
    assert stat.S_IMODE(points.stat().st_mode) == 0o600
    assert (await verify_all(engine.pool, KEY, points)).ok
    await engine.pool.execute("DELETE FROM audit_log WHERE seq >= 5")
    # The chain alone cannot tell; the checkpoint can.
    assert (await audit.verify(engine.pool, KEY)).ok
    found = await verify_all(engine.pool, KEY, points)
    assert not found.ok and found.first_bad == 6 and "removed" in found.problem


async def test_removing_everything_shows_against_a_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    points = tmp_path / "audit.checkpoints"
    await _entries(engine, 3)
    await write_checkpoint(engine.pool, KEY, points, NOW)
    await engine.pool.execute("DELETE FROM audit_log")
    await engine.pool.execute("DELETE FROM audit_anchor")
    found = await verify_all(engine.pool, KEY, points)
    assert not found.ok and found.first_bad == 3


async def test_pruned_checkpointed_entries_still_verify(engine: Engine, tmp_path: Path) -> None:
    points = tmp_path / "audit.checkpoints"
    await _entries(engine, 3, start=NOW - timedelta(days=200))
    await write_checkpoint(engine.pool, KEY, points, NOW - timedelta(days=199))
    await _entries(engine, 2)
    await write_checkpoint(engine.pool, KEY, points, NOW)
    assert await audit.prune(engine.pool, KEY, NOW, timedelta(days=100)) == 3
    assert (await verify_all(engine.pool, KEY, points)).ok


async def test_an_altered_or_foreign_checkpoint_file_is_a_break(
    engine: Engine, tmp_path: Path
) -> None:
    points = tmp_path / "audit.checkpoints"
    await _entries(engine, 4)
    await write_checkpoint(engine.pool, KEY, points, NOW)
    seq, mac, at, seal = points.read_text().strip().split("\t")
    points.write_text(f"2\t{mac}\t{at}\t{seal}\n")
    found = await verify_all(engine.pool, KEY, points)
    assert not found.ok and "1 行目" in found.problem
    points.unlink()
    await write_checkpoint(engine.pool, b"z" * 32, points, NOW)
    assert not (await verify_all(engine.pool, KEY, points)).ok


# serve's daily check -------------------------------------------------------------------------

async def test_the_keeper_raises_the_gauge_and_logs_a_broken_chain(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    points = tmp_path / "audit.checkpoints"
    keeper = AuditKeeper(engine.pool, FakeClock(NOW), KEY, keep=400 * 86400.0,
                         checkpoints=points)
    await _entries(engine, 3)
    found = await keeper.verify_once()
    assert found is not None and found.ok
    assert AUDIT_CHAIN_INTACT._value.get() == 1
    await keeper.checkpoint_once()
    assert points.read_text().startswith("3\t")
    await engine.pool.execute("UPDATE audit_log SET detail = 'changed' WHERE seq = 2")
    caplog.set_level(logging.ERROR, logger="engine.staff.audit_keeper")
    found = await keeper.verify_once()
    assert found is not None and not found.ok and found.first_bad == 2
    assert AUDIT_CHAIN_INTACT._value.get() == 0
    assert "audit log broken" in caplog.text
    # /readyz reads the result from any process.
    assert await engine.pool.fetchval("SELECT ok FROM service_status WHERE name = 'audit'") is False
