"""Shared fixtures: a real PostgreSQL (embedded, or MAMORU_TEST_DATABASE_URL) and settings.

The schema is migrated once into a template database; each test that asks for ``db_url`` gets
a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from support import make_settings, wait_until  # noqa: F401 - re-exported for old imports

from engine.delivery.context import Engine

# One template per pytest-xdist worker ("gw0", ...): workers may share one server
# (MAMORU_TEST_DATABASE_URL), and each drops and re-creates its template at start.
TEMPLATE_DB = f"mamoru_test_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("MAMORU_TEST_DATABASE_URL")
    if url:
        yield url
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    # A short path: PostgreSQL's socket path must stay under ~100 bytes.
    data = Path(f"/tmp/mamoru-test-pg-{os.getpid()}")
    server = pgserver.get_server(data, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def template_url(server_url: str) -> str:
    from engine.platform.config import DatabaseSettings
    from engine.platform.db import create_pool

    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    url = with_database(server_url, TEMPLATE_DB)
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=1), url)
    await pool.close()
    return url


@contextlib.asynccontextmanager
async def scratch_database(
    server_url: str, prefix: str = "mamoru_t", template: str | None = TEMPLATE_DB
) -> AsyncIterator[str]:
    """A database of its own for one test (a copy of ``template``, or empty), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f" TEMPLATE {template}" if template else ""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url) as url:
        yield url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Engine]:
    eng = await Engine.open(make_settings(db_url))
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
def sink() -> Iterator[Any]:
    from sinks import Sink

    with Sink() as s:
        yield s


@pytest.fixture(autouse=True)
def _no_remembered_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The --config given before a subcommand is a module global of cli.options, set by the
    main app's callback: a test that invokes a sub-app directly must not inherit the one an
    earlier in-process invocation of the main app left behind (the value comes back after)."""
    from cli import options

    monkeypatch.setattr(options, "_before_subcommand", None)
