"""Absolute URLs come from [http] public_url, never from the request's Host header."""

from __future__ import annotations

from dataclasses import replace

from fastapi import FastAPI
from staff.conftest import World, world  # noqa: F401  (the fixture, reused)
from starlette.requests import Request

from admin_api.staff import staff_routers
from admin_api.staff.deps import public_url_for


async def test_status_url_ignores_a_forged_host_header(world: World) -> None:  # noqa: F811
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.post("/api/staff/broadcasts", headers={"Host": "evil.example"}, json={
            "sender": "sho1@example.jp", "subject": "遠足", "body": "来週は遠足です。",
            "audience": {"schools": [world.orgs["sho1"]]},
        })
        assert r.status_code == 201, r.text
        made = r.json()
        # No public_url in this set-up: the path alone, which the client resolves itself.
        assert made["status_url"] == f"/api/staff/broadcasts/{made['broadcast_id']}"
        assert (await c.get(made["status_url"])).status_code == 200


def test_with_a_public_url_the_url_is_under_it(world: World) -> None:  # noqa: F811
    app = FastAPI()
    for router in staff_routers():
        app.include_router(router)
    request = Request({"type": "http", "app": app, "headers": [(b"host", b"evil.example")],
                       "server": ("evil.example", 443), "scheme": "https", "path": "/"})
    api = replace(world.api, public_url="https://mail.city.example.jp/")
    assert public_url_for(request, api, "broadcast_status", broadcast_id=7) == (
        "https://mail.city.example.jp/api/staff/broadcasts/7")
