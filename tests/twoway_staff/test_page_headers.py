"""The pages' safety headers (admin_api/app.py), now a plain ASGI middleware: on every page,
on errors too, and never replacing a header a route set itself."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from support import make_settings

from admin_api.app import create_app
from admin_api.site import open_site
from engine.delivery.context import Engine
from engine.people import People
from engine.platform.sealing import new_key_text

own = APIRouter()


@own.get("/cached")
async def cached() -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"Cache-Control": "max-age=60"})


async def test_every_page_carries_the_safety_headers(db_url: str) -> None:
    settings = make_settings(db_url, people={"key": new_key_text()})
    eng = await Engine.open(settings)
    try:
        people = await People.open(eng.pool, settings.people)
        site = await open_site(settings, people, b"page-header-test-secret-0123456789")
        transport = httpx.ASGITransport(app=create_app(site, extra=[own]))
        async with httpx.AsyncClient(transport=transport, base_url="http://pages.test") as c:
            home, missing, mine = (await c.get("/"), await c.get("/nosuch"),
                                   await c.get("/cached"))
    finally:
        await eng.close()
    assert home.status_code == 200 and missing.status_code == 404
    for r in (home, missing):
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert len(r.headers.get_list("cache-control")) == 1
    assert mine.headers.get_list("cache-control") == ["max-age=60"]
    assert mine.headers["x-frame-options"] == "DENY"
