"""Every body-taking endpoint of the staff API refuses a field it does not know (422 naming
it) instead of dropping it, enumerated from the OpenAPI document so none is forgotten; and a
misspelt "sendat" stores nothing."""

from __future__ import annotations

import re
from typing import Any

from staff.conftest import World, world  # noqa: F401  (the fixture, reused)

UNKNOWN = "zz_unknown_field"


async def _bearer(w: World, path: str) -> str:
    token = await w.login("board")
    if not path.startswith("/api/apps/"):
        return token
    async with w.client(token) as c:
        r = await c.post("/api/staff/api-keys",
                         json={"name": "時間割システム", "organisation_id": w.orgs["sho1"]})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def _body_endpoints(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, media type) of every operation that takes a body."""
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            for media in content:
                out.append((method, path, media))
    return out


async def test_every_body_refuses_an_unknown_field_by_name(world: World) -> None:  # noqa: F811
    async with world.client() as c:
        spec = (await c.get("/openapi.json")).json()
    endpoints = _body_endpoints(spec)
    # The API's body-taking operations: login, staff, keys, policy, broadcasts, templates ...
    assert len(endpoints) >= 15, endpoints
    tokens = {kind: await _bearer(world, f"/api/{kind}/") for kind in ("staff", "apps")}
    before = await world.count("SELECT count(*) FROM broadcasts")
    for method, path, media in endpoints:
        url = re.sub(r"\{[^}]+\}", "1", path)
        token = tokens["apps" if path.startswith("/api/apps/") else "staff"]
        async with world.client(token) as c:
            headers = {"Idempotency-Key": "strict-1"}
            if media == "application/json":
                r = await c.request(method, url, json={UNKNOWN: 1}, headers=headers)
            else:
                r = await c.request(method, url, headers=headers, files=[
                    ("broadcast", (None, "{}")), (UNKNOWN, (None, "x"))])
        assert r.status_code == 422, (method, path, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "message"} and body["error"] == "invalid", body
        assert f"{UNKNOWN}: 知らない項目です" in body["message"], (method, path, body)
    assert await world.count("SELECT count(*) FROM broadcasts") == before


async def test_a_misspelt_send_time_sends_nothing(world: World) -> None:  # noqa: F811
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "遠足", "body": "来週は遠足です。",
            "audience": {"schools": [world.orgs["sho1"]]},
            "sendat": "2030-01-01T09:00:00+09:00",
        })
        nested = await c.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "遠足", "body": "来週は遠足です。",
            "audience": {"schools": [world.orgs["sho1"]], "clases": [1]},
        })
    assert r.status_code == 422 and "sendat: 知らない項目です" in r.json()["message"]
    assert nested.status_code == 422
    assert "audience.clases: 知らない項目です" in nested.json()["message"]
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
