"""The people package's handle: the pool, the sealer and the clock, with the key checked.

Every operation of ``engine.people`` takes a ``People``. Opening one compares the key's
fingerprint with the one the database was first used with, so a wrong or new key is refused
at once with a clear message instead of storing rows that nobody can read together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncpg

from engine.platform.clock import Clock, SystemClock
from engine.platform.config import PeopleSettings
from engine.platform.errors import ConfigError
from engine.platform.sealing import ADDRESS as ADDRESS
from engine.platform.sealing import Sealer, load_key

# Purposes of sealed values (the AES-GCM associated data and the hash's separator).
CONTACT_NAME = "contact.name"
ACCOUNT_NAME = "account.name"
CODE = "account.code"


@dataclass(frozen=True)
class People:
    pool: asyncpg.Pool
    sealer: Sealer
    clock: Clock

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, settings: PeopleSettings, clock: Clock | None = None
    ) -> People:
        sealer = await open_sealer(pool, settings)
        await check_key(pool, sealer)
        return cls(pool, sealer, clock or SystemClock())


async def open_sealer(pool: asyncpg.Pool, settings: PeopleSettings) -> Sealer:
    """The sealer of ``[people] key`` / ``key_file``. A missing key file is made only for a
    database that has never had a people key (a new one, or one from before keys were
    recorded): when the database remembers a key, a missing file is refused and none is made,
    so a command started with the wrong configuration or from the wrong directory cannot leave
    a stray new key behind (docs/operation.md, 「鍵ファイル」)."""
    if settings.key or _key_file_exists(settings):
        return Sealer(load_key(settings.key, settings.key_file, create=False))
    known = await pool.fetchval("SELECT 1 FROM mamoru_secrets WHERE name = 'people_key'")
    return _new_sealer(settings, known=bool(known))


def _key_file_exists(settings: PeopleSettings) -> bool:
    return os.path.exists(settings.key_file)


def _new_sealer(settings: PeopleSettings, known: bool) -> Sealer:
    if known:
        path = os.path.abspath(settings.key_file)
        raise ConfigError(
            f"個人情報の暗号鍵のファイル {path} がありません。このデータベースは既に鍵を使って"
            f"います: 鍵ファイルをバックアップから戻すか、正しい設定 (--config) を指定して"
            f"ください (people.key_file {path} does not exist, but this database was set up "
            f"with a people key; no new key is made)"
        )
    return Sealer(load_key(settings.key, settings.key_file, create=True))


async def check_key(pool: asyncpg.Pool, sealer: Sealer) -> None:
    """Remember the key's fingerprint on first use; refuse a different key afterwards."""
    mine = sealer.fingerprint()
    await pool.execute(
        "INSERT INTO mamoru_secrets (name, value) VALUES ('people_key', $1) "
        "ON CONFLICT (name) DO NOTHING",
        mine,
    )
    stored: str = await pool.fetchval("SELECT value FROM mamoru_secrets WHERE name='people_key'")
    if stored != mine:
        raise ConfigError(
            "個人情報の暗号鍵がこのデータベースの鍵と違います (the people key is not the one this "
            "database was set up with; check [people] key / key_file, or restore the key file)"
        )
