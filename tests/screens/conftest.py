"""Fixtures for the staff screens: the staff world of tests/staff (a board, two schools,
their families and staff) served with the screens by one real uvicorn on 127.0.0.1, as
``mamoru serve`` serves them, its mail routed to an SMTP sink; and Debian's chromium driven
by Playwright (never a downloaded browser: the tests skip, naming the package, without it)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sinks import Sink
from staff.conftest import World, new_world
from support import make_settings, served

from admin_api.app import create_app
from admin_api.site import open_site
from admin_api.staff import StaffApi, mount_staff
from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.platform.sealing import new_key_text

CHROMIUM = os.environ.get("MAMORU_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SECRET = b"screens-test-secret-0123456789ab"
# Screenshots of every screen at both sizes land here (git-ignored): look at them.
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screens"
SIZES = {"pc": (1366, 768), "phone": (390, 844)}


@dataclass
class ScreensWorld:
    w: World
    engine: Engine
    sink: Sink

    @property
    def url(self) -> str:
        return self.w.base_url

    @asynccontextmanager
    async def runner(self) -> AsyncIterator[None]:
        """A delivery runner on the world's queue (mail goes to the sink) while inside."""
        runner = await self.engine.runner()
        task = asyncio.create_task(runner.run())
        try:
            yield
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def sw(db_url: str) -> AsyncIterator[ScreensWorld]:
    with Sink() as sink:
        settings = make_settings(
            db_url, people={"key": new_key_text()},
            staff={"max_failures": 3, "session_ttl": 3600.0, "lockout_time": 900.0,
                   "idle_timeout": 600.0},
            # Surveys and read confirmation need a public URL for their links.
            http={"public_url": "http://mail.city.example.jp", "listen": ""},
            routing={"transport": {"*": sink.address}},
        )
        # The engine runs on the real clock (the browser waits on real time); the world's
        # clock is only there for World's sake.
        clock = FakeClock(datetime.now(UTC))
        engine = await Engine.open(settings)
        api = await StaffApi.open(engine.pool, settings)
        site = await open_site(settings, api.people, SECRET)
        app = create_app(site)
        mount_staff(app, api)
        try:
            async with served(app) as base_url:
                w = await new_world(settings, clock, api, base_url)
                yield ScreensWorld(w, engine, sink)
        finally:
            await engine.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run "
                    "installs it): the browser tests of the staff screens need it")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - the test extras install it
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def artifacts() -> Iterator[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTIFACTS


def _axe_source() -> str:
    """axe-core's axe.min.js as the axe-playwright-python package ships it (no network)."""
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).with_name("axe.min.js")).read_text("utf-8")


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core run in the page: the serious and critical violations (WCAG 2 A/AA rules)."""
    await page.evaluate(_axe_source())
    result = await page.evaluate(
        "async () => JSON.stringify(await axe.run(document, {runOnly: {type: 'tag', "
        "values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}}))"
    )
    violations: list[dict[str, Any]] = json.loads(result)["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in violations if v["impact"] in ("serious", "critical")
    ]


async def check_screen(page: Any, name: str, folder: Path) -> None:
    """A screenshot of the page at both sizes into ``folder``, and no serious or critical
    accessibility violation at either."""
    for size, (width, height) in SIZES.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(folder / f"{name}-{size}.png"), full_page=True)
        bad = await axe_violations(page)
        assert bad == [], f"{name} at {size}: {bad}"
    await page.set_viewport_size({"width": 1366, "height": 768})

