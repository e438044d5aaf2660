"""The database: an asyncpg pool, the embedded PostgreSQL when no DSN is set, and migrations.

Migrations are the numbered files in ``engine/migrations`` (``001_queue.sql``, ...). They are
applied in order at start, each in its own transaction, under an advisory lock so that several
runner processes starting together apply each one exactly once, and recorded in
``mamoru_migrations``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from engine.platform.config import DatabaseSettings
from engine.platform.embedded import embedded_dsn as embedded_dsn
from engine.platform.errors import DatabaseError
from engine.platform.outage import UNREACHABLE_ERRORS, quiet_pool_reconnects

log = logging.getLogger(__name__)


# Any constant works; it only has to be the same in every mamoru process.
_MIGRATION_LOCK = 0x6D616D6F

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn


def dsn_for(settings: DatabaseSettings) -> str:
    return settings.url or embedded_dsn(settings.data_dir)


def host_dsns(dsn: str) -> list[str]:
    """A URL naming several hosts (``postgresql://u@db1:5432,db2:5432/mamoru?...``) as one
    single-host URL per host, in order, each keeping the rest (user, database, query with
    ``target_session_attrs``); any other DSN as it is."""
    parts = urlsplit(dsn)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [dsn]
    return [parts._replace(netloc=f"{userinfo}{at}{host}").geturl()
            for host in hosts.split(",") if host]


# The pool calls it as it calls asyncpg.connect: with asyncpg's timeout argument.
async def connect(
    dsn: str, *, timeout: float = 60, **kwargs: Any  # noqa: ASYNC109
) -> asyncpg.Connection:
    """``asyncpg.connect`` that gives each host of a several-host URL its own ``timeout``, as
    libpq's ``connect_timeout`` does. asyncpg's timeout covers all the hosts together, so a
    first host that does not answer at all (a machine powered off, a network cut: no refusal,
    only silence) used it up and the second host was never tried: after a failover to the
    replica, nothing ever connected again. A host that is unreachable, still starting, or not
    what ``target_session_attrs`` asks for (a standby, for ``read-write``) is passed over for
    the next; the last host's error is raised when none will do."""
    dsns = host_dsns(dsn)
    if len(dsns) == 1:
        return await asyncpg.connect(dsn, timeout=timeout, **kwargs)
    last: BaseException | None = None
    for one in dsns:
        try:
            return await asyncpg.connect(one, timeout=timeout, **kwargs)
        except UNREACHABLE_ERRORS as exc:
            last = exc
    assert last is not None
    raise last


async def create_pool(settings: DatabaseSettings, dsn: str | None = None) -> asyncpg.Pool:
    """Open the pool and bring the schema up to date."""
    quiet_pool_reconnects()
    dsn = dsn or dsn_for(settings)
    try:
        pool = await asyncio.wait_for(
            asyncpg.create_pool(
                dsn,
                connect=connect,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                timeout=settings.connect_timeout,
                command_timeout=120,
                reset=_keep_session,
            ),
            timeout=settings.connect_timeout * len(host_dsns(dsn)) + 5,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {redact(dsn)}: {detail}; "
            f"check [database] url (or MAMORU_DATABASE_URL) and that the server is running"
        ) from None
    assert pool is not None
    try:
        await migrate(pool)
    except BaseException:
        await pool.close()
        raise
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, besides asyncpg's own rollback of an open
    transaction: nothing. asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` each time, a second round trip for every pooled query (about half
    of a personal page's database time). mamoru leaves no session state on pooled connections:
    no ``SET`` (only ``SET LOCAL``), no ``LISTEN`` (the runner listens on a connection of its
    own), advisory locks only ``pg_advisory_xact_lock``/``pg_try_advisory_xact_lock``, cursors
    only inside transactions. tests/engine_platform/test_db_pool.py checks a connection is
    handed on clean."""


#: Rows written at once from which the tables' statistics are refreshed at once (``analyze``).
BULK_ROWS = 1000


async def analyze(pool: asyncpg.Pool, *tables: str) -> None:
    """Refresh the planner's statistics of ``tables`` (names from the code, never from input)
    after a bulk write, instead of waiting up to a minute for autovacuum: with none, PostgreSQL
    assumes default selectivities and a personal page's query over a just-imported board scans
    every account (9 ms instead of 0.07 ms, bench/twoway_clicks.py). Best effort: it runs
    after the write has committed, so a failure is logged, never raised to a caller who would
    then take the import or the broadcast for failed."""
    try:
        await pool.execute("ANALYZE " + ", ".join(tables))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("ANALYZE %s failed (statistics refresh left to autovacuum): %s",
                    ", ".join(tables), exc)


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("engine").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a number: {versions}")
    return found


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        # Under the lock too: two hosts starting together on a new database would otherwise
        # race in CREATE TABLE IF NOT EXISTS (a unique violation in pg_type for the loser).
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS mamoru_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
        for mig in load_migrations():
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                done = await conn.fetchval(
                    "SELECT 1 FROM mamoru_migrations WHERE version = $1", mig.version
                )
                if done:
                    continue
                try:
                    await conn.execute(mig.sql)
                except asyncpg.PostgresError as exc:
                    raise DatabaseError(
                        f"migration {mig.version:03d}_{mig.name} failed: {exc}"
                    ) from exc
                await conn.execute(
                    "INSERT INTO mamoru_migrations (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
                applied_now.append(mig.version)
                log.info("applied migration %03d_%s", mig.version, mig.name)
    return applied_now

