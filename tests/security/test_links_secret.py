"""The link key lives in a key file beside the people key, never in the database; an old
database's key is moved there on first start, so links already mailed keep working."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import make_settings

from engine.delivery.context import Engine
from engine.message.links import PAGE, LinkSigner
from engine.platform.config import Settings
from engine.platform.errors import ConfigError
from engine.platform.link_key import link_key_path

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
OLD_SECRET = "0123456789abcdef" * 4


def with_key_file(db_url: str, path: Path) -> Settings:
    settings = make_settings(db_url)
    return replace(settings, people=replace(settings.people, link_key_file=str(path)))


async def secret_rows(eng: Engine) -> dict[str, str]:
    rows = await eng.pool.fetch("SELECT name, value FROM mamoru_secrets")
    return {r["name"]: r["value"] for r in rows}


async def test_a_new_key_is_made_in_a_private_file_not_in_the_database(
    db_url: str, tmp_path: Path,
) -> None:
    path = tmp_path / "keys" / "link.key"
    eng = await Engine.open(with_key_file(db_url, path))
    try:
        secret = await eng.verp_secret()
        assert path.read_bytes().strip() == secret
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = await secret_rows(eng)
        assert "verp" not in stored
        assert secret.decode() not in stored.values()  # only a fingerprint is kept
    finally:
        await eng.close()


async def test_an_old_database_key_moves_to_the_file_and_old_links_keep_working(
    db_url: str, tmp_path: Path,
) -> None:
    old_link = LinkSigner(OLD_SECRET.encode()).token(PAGE, 42, NOW + timedelta(days=7))
    path = tmp_path / "link.key"
    eng = await Engine.open(with_key_file(db_url, path))
    try:
        await eng.pool.execute(
            "INSERT INTO mamoru_secrets (name, value) VALUES ('verp', $1)", OLD_SECRET)
        secret = await eng.verp_secret()
        assert LinkSigner(secret).verify(PAGE, old_link, NOW) == 42
        assert path.read_text("ascii").strip() == OLD_SECRET
        assert "verp" not in await secret_rows(eng)
    finally:
        await eng.close()
    # The next start reads the file; the database has nothing left to move.
    eng = await Engine.open(with_key_file(db_url, path))
    try:
        assert LinkSigner(await eng.verp_secret()).verify(PAGE, old_link, NOW) == 42
    finally:
        await eng.close()


async def test_a_missing_or_different_key_file_is_refused(db_url: str, tmp_path: Path) -> None:
    first = tmp_path / "a" / "link.key"
    eng = await Engine.open(with_key_file(db_url, first))
    await eng.verp_secret()
    await eng.close()
    # Another host started without the file: it must not sign links nobody else can check.
    eng = await Engine.open(with_key_file(db_url, tmp_path / "b" / "link.key"))
    try:
        with pytest.raises(ConfigError, match="does not exist.*copy it here"):
            await eng.verp_secret()
    finally:
        await eng.close()
    other = tmp_path / "c" / "link.key"
    other.parent.mkdir()
    other.write_text("f" * 64 + "\n", encoding="ascii")
    eng = await Engine.open(with_key_file(db_url, other))
    try:
        with pytest.raises(ConfigError, match="not the key this database"):
            await eng.verp_secret()
    finally:
        await eng.close()


def test_the_default_file_is_beside_the_people_key() -> None:
    people = make_settings("").people
    assert link_key_path(replace(people, link_key_file="", key_file="/etc/mamoru/people.key")) \
        == Path("/etc/mamoru/link.key")
