"""The link key: the secret that signs personal links, VERP return paths and Message-IDs.

Whoever holds it can mint any guardian's page link (engine/message/links.py), so it is kept
in a key file beside the people key (``[people] link_key_file``; empty: ``link.key`` in the
people key file's folder, ``var/keys/link.key`` by default), created with mode 0600 on first
use, never in the database it protects: a copy of the database alone opens no page.
``[message] verp_secret`` set in the configuration (or ``MAMORU_MESSAGE_VERP_SECRET``) takes
its place.

Before this file existed the key was generated into the database (``mamoru_secrets``, name
``verp``). The first start that finds it there writes it to the file, unchanged, and deletes
it from the database in the same transaction, so every link already mailed keeps working.
The database keeps only a fingerprint (an HMAC of a constant under the key), so that a host
started with a missing or different file is refused instead of signing links nobody else can
check. Several hosts of one serve share the file: copy it with the people key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import asyncpg

from engine.platform.config import PeopleSettings, Settings
from engine.platform.errors import ConfigError

#: The row of ``mamoru_secrets`` that held the key before it moved to its file.
_OLD_ROW = "verp"
#: The row that keeps the key's fingerprint.
_CHECK_ROW = "link_key_check"
# pg_advisory_xact_lock id: two processes starting together move the key once.
_LOCK = 0x6D616D6F_6C6B


def link_key_path(people: PeopleSettings) -> Path:
    if people.link_key_file:
        return Path(people.link_key_file)
    return Path(people.key_file or "var/keys/people.key").parent / "link.key"


def fingerprint(secret: bytes) -> str:
    return hmac.new(secret, b"mamoru link key check", hashlib.sha256).hexdigest()[:32]


async def link_secret(pool: asyncpg.Pool, settings: Settings) -> bytes:
    """The deployment's link key, moving it out of the database the first time."""
    if settings.message.verp_secret:
        return settings.message.verp_secret.encode("utf-8")
    path = link_key_path(settings.people)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        stored: str | None = await conn.fetchval(
            "SELECT value FROM mamoru_secrets WHERE name = $1 FOR UPDATE", _OLD_ROW
        )
        check: str | None = await conn.fetchval(
            "SELECT value FROM mamoru_secrets WHERE name = $1", _CHECK_ROW
        )
        secret = _read(path)
        if secret is None:
            if stored is None and check is not None:
                raise ConfigError(
                    f"people.link_key_file {path} does not exist, but this database's links "
                    "were signed with a key kept in such a file: copy it here from the host "
                    "that has it (or from the backup kept with the people key)"
                )
            secret = _create(path, stored.encode("ascii") if stored else _new_key())
        if stored is not None and stored.encode("ascii") != secret:
            raise ConfigError(
                f"people.link_key_file {path} holds another key than the one still in the "
                "database: remove the file to move the database's key into it"
            )
        mine = fingerprint(secret)
        if check is not None and check != mine:
            raise ConfigError(
                f"people.link_key_file {path} is not the key this database's links were "
                "signed with: copy the right file here"
            )
        if check is None:
            await conn.execute(
                "INSERT INTO mamoru_secrets (name, value) VALUES ($1, $2)", _CHECK_ROW, mine
            )
        if stored is not None:
            await conn.execute("DELETE FROM mamoru_secrets WHERE name = $1", _OLD_ROW)
    return secret


def read_link_key(path: Path) -> bytes | None:
    """The key in the link key file ``path``, None when there is none (backup, restore)."""
    return _read(path)


def write_link_key(path: Path, secret: bytes) -> bytes:
    """Create the link key file ``path`` (0600) with ``secret``; returns the key the file
    holds (another's when it appeared meanwhile). Used by ``mamoru restore``."""
    return _create(path, secret)


def _new_key() -> bytes:
    # The same form as the keys generated into the database before: 64 hex digits.
    return secrets.token_hex(32).encode("ascii")


def _read(path: Path) -> bytes | None:
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"people.link_key_file {path} cannot be read: {exc.strerror}") from None
    if len(text) < 32:
        raise ConfigError(f"people.link_key_file {path} holds no usable key (too short)")
    return text


def _create(path: Path, secret: bytes) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: a process of another serve on this host cannot be overwritten.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        found = _read(path)
        assert found is not None
        return found
    except OSError as exc:
        raise ConfigError(
            f"people.link_key_file {path} cannot be created: {exc.strerror}"
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return secret
