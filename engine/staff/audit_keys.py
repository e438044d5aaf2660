"""The audit chain's key: configured text, else a key file outside the database.

Before issue 21 the key was generated once and kept in the database (``mamoru_secrets``),
so whoever could write the database could also rewrite the whole chain and have it verify.
Now it lives in ``[staff] audit_key_file`` (0600, made on first use, like the people key; a
database whose chain already has entries gets no new key: a missing file is refused).
A database that still holds the old key hands it over once: the file is written with the
same bytes, so the chain written so far keeps verifying, and the row is deleted.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg

from engine.platform.config import StaffSettings
from engine.platform.errors import ConfigError
from engine.platform.key_files import create_key_file, read_key_file

LABEL = "staff.audit_key_file"
# New keys are 32 random bytes; keys handed over from the database were 64 hex characters
# used as they were.
_MIN_BYTES, _MAX_BYTES = 32, 64


async def load_audit_key(pool: asyncpg.Pool, settings: StaffSettings) -> bytes:
    """The key of the audit chain (see the module's text)."""
    if settings.audit_key:
        return settings.audit_key.encode("utf-8")
    if not settings.audit_key_file:
        raise ConfigError("staff.audit_key or staff.audit_key_file must be set")
    path = Path(settings.audit_key_file)
    async with pool.acquire() as conn, conn.transaction():
        old: str | None = await conn.fetchval(
            "SELECT value FROM mamoru_secrets WHERE name = 'audit' FOR UPDATE"
        )
        written = bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit_log)"))
        key = _from_file(path, old, written)
        if old is not None:
            if old.encode("ascii") != key:
                raise ConfigError(
                    f"{LABEL} {path} とデータベースに残る監査ログの鍵が違います。正しい鍵の"
                    f"ファイルを置いてください (the key file differs from the key still kept in "
                    f"the database; the chain was written with the database's)"
                )
            await conn.execute("DELETE FROM mamoru_secrets WHERE name = 'audit'")
    return key


def _from_file(path: Path, old: str | None, written: bool) -> bytes:
    """The key file's key; a missing file is made with the database's old key or a new one,
    but never a new one for a chain already written (``written``)."""
    if path.exists():
        return read_key_file(path, LABEL, _MIN_BYTES, _MAX_BYTES)
    if old is None and written:
        raise ConfigError(
            f"{LABEL} {path.resolve()} がありません。このデータベースの監査ログはその鍵で書かれて"
            f"います: 鍵ファイルをバックアップから戻すか、正しい設定 (--config) を指定してください "
            f"(the audit key file does not exist, but this database's audit chain was written "
            f"with one; no new key is made)"
        )
    fresh = old.encode("ascii") if old is not None else secrets.token_bytes(_MIN_BYTES)
    return create_key_file(path, fresh, LABEL, _MAX_BYTES)
