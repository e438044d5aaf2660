"""Helpers shared by the tests: settings for a test database, waiting on a condition."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from engine.platform.config import Settings, load_settings
from engine.platform.sealing import new_key_text

# The people key of the tests' settings (names and addresses, the queue's recipients): one per
# test session, so no test writes a key file into the working tree.
TEST_PEOPLE_KEY = new_key_text()
# The audit chain's key, likewise (the default is a key file under var/keys).
TEST_AUDIT_KEY = new_key_text()
# The link key file (engine/platform/link_key.py) of the tests' settings and configuration
# files: one per test session, outside the working tree, shared with the mamoru subprocesses.
_KEY_DIR = tempfile.mkdtemp(prefix="mamoru-test-keys-")
atexit.register(shutil.rmtree, _KEY_DIR, True)
TEST_LINK_KEY_FILE = str(Path(_KEY_DIR) / "link.key")


def make_settings(db_url: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: the test database, fast retries, plus the given overrides."""
    base = load_settings(None, environ={})
    settings = replace(
        base,
        database=replace(base.database, url=db_url, pool_min=1, pool_max=5),
        queue=replace(
            base.queue, poll_interval=0.05, retry_base=0.05, retry_max=0.2, flush_interval=0.02
        ),
        delivery=replace(
            base.delivery, connect_timeout=2.0, command_timeout=2.0, data_timeout=2.0,
            shutdown_grace=2.0,
        ),
        metrics=replace(base.metrics, listen=""),
        # The test servers are ours: shaping is tested on its own (tests/throttle) and with the
        # carrier simulator (tests/delivery/test_shaping.py).
        shaping={"enabled": False},
        # The test servers have no DNS for keys; tests of signing give [dkim] keys themselves.
        dkim={"allow_unsigned": True},
        people=replace(base.people, key=TEST_PEOPLE_KEY, link_key_file=TEST_LINK_KEY_FILE),
        # Checkpoints are tested where a test gives a file (tests/security/test_audit_chain.py).
        staff=replace(base.staff, audit_key=TEST_AUDIT_KEY, audit_checkpoints=""),
    )
    for name, values in sections.items():
        settings = replace(settings, **{name: replace(getattr(settings, name), **values)})
    return settings


async def wait_until(
    condition: Any, timeout: float = 10.0, interval: float = 0.02  # noqa: ASYNC109
) -> None:
    """Wait until ``condition()`` (sync or async) is true, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


# Sealed columns (migration 016) and what they hold: tests read them opened.
_SEALED = {
    "recipient_sealed": ("recipient", "delivery.recipient", False),
    "address_sealed": ("address", "delivery.recipient", False),
    "mail_from_sealed": ("mail_from", "inbound.mail_from", False),
    "raw_sealed": ("raw", "inbound.raw", True),
}


async def opened_rows(db: Any, sealer: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts, every sealed address or mail opened under its plain name
    (``recipient``, ``address``, ``mail_from``, ``raw``), as the code that reads them sees it."""
    out = []
    for record in await db.fetch(sql, *args):
        row = dict(record.items())
        for column, (name, purpose, raw) in _SEALED.items():
            if column in row:
                value = row.pop(column)
                if value is not None:
                    row[name] = (
                        sealer.open_bytes(value, purpose) if raw else sealer.open(value, purpose)
                    )
                else:
                    row[name] = None
        out.append(row)
    return out


async def opened_row(db: Any, sealer: Any, sql: str, *args: Any) -> dict[str, Any] | None:
    """The first row of ``opened_rows``, or None."""
    rows = await opened_rows(db, sealer, sql, *args)
    return rows[0] if rows else None


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` served by a real uvicorn on 127.0.0.1 (a free port) while inside; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=5)
        if task.done():
            task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
