"""Applications submit by HTTP with an API key and an idempotency key: a retry never sends
twice; a key has exactly its school's rights; the mail reaches a loopback SMTP sink."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
from sinks import Sink

from engine.delivery.context import Engine

from .conftest import World
from .test_broadcasts import body


async def _key(world: World, school: str) -> str:
    token = await world.login("board")
    async with world.client(token) as c:
        r = await c.post(
            "/api/staff/api-keys",
            json={"name": f"{school} 時間割システム", "organisation_id": world.orgs[school]},
        )
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    assert key.startswith("mak_") and r.json()["prefix"] == key[:12]
    return key


async def _submit(
    c: httpx.AsyncClient, payload: dict[str, Any], idem: str | None
) -> httpx.Response:
    headers = {"Idempotency-Key": idem} if idem is not None else {}
    return await c.post("/api/apps/broadcasts", json=payload, headers=headers)


async def test_a_retried_request_with_the_same_key_sends_once(world: World) -> None:
    key = await _key(world, "sho1")
    payload = body({"classes": [world.classes["sho1-3-1"]]})
    async with world.client(key) as c:
        first = await _submit(c, payload, "req-2026-0001")
        retry = await _submit(c, payload, "req-2026-0001")
        # Two at once with a new key: they meet at the unique index, one broadcast results.
        racing = await asyncio.gather(
            _submit(c, payload, "req-2026-0002"), _submit(c, payload, "req-2026-0002")
        )
        other_body = await _submit(c, {**payload, "subject": "別の件名"}, "req-2026-0001")
        status = await c.get(first.json()["status_url"])
    assert first.status_code == 201 and first.json()["replayed"] is False
    assert retry.status_code == 200 and retry.json()["replayed"] is True
    assert retry.json()["broadcast_id"] == first.json()["broadcast_id"]
    assert sorted(r.status_code for r in racing) == [200, 201]
    assert racing[0].json()["broadcast_id"] == racing[1].json()["broadcast_id"]
    assert other_body.status_code == 409 and "冪等キー" in other_body.json()["message"]
    assert status.status_code == 200
    assert status.json()["broadcast"]["by_state"]["queued"] == 2
    assert await world.count("SELECT count(*) FROM broadcasts") == 2
    assert await world.count("SELECT count(*) FROM deliveries") == 4


async def test_an_api_key_has_its_schools_rights_only(world: World) -> None:
    key = await _key(world, "sho1")
    async with world.client(key) as c:
        other = await _submit(c, body({"schools": [world.orgs["sho2"]]}), "k1")
        no_idem = await _submit(c, body({"schools": [world.orgs["sho1"]]}), None)
    assert other.status_code == 403 and "権限" in other.json()["message"]
    assert no_idem.status_code == 422 and "idempotency" in no_idem.json()["message"].lower()
    board_key = await _key(world, "city")
    async with world.client(board_key) as c:
        everyone = await _submit(c, body({"board": True}), "k1")
    assert everyone.status_code == 201 and everyone.json()["recipients"] == 6
    # The school's key cannot read the board's broadcast either.
    async with world.client(key) as c:
        assert (await c.get(everyone.json()["status_url"])).status_code == 404
    assert await world.count("SELECT count(*) FROM broadcasts") == 1


async def test_a_disabled_key_and_a_session_token_are_refused_on_the_app_endpoint(
    world: World,
) -> None:
    key = await _key(world, "sho1")
    token = await world.login("admin1")
    async with world.client(token) as c:
        as_staff = await _submit(c, body({"schools": [world.orgs["sho1"]]}), "k1")
    board = await world.login("board")
    async with world.client(board) as c:
        key_id = (await c.get("/api/staff/api-keys")).json()[0]["id"]
        assert (await c.post(f"/api/staff/api-keys/{key_id}/disable")).status_code == 200
    async with world.client(key) as c:
        disabled = await _submit(c, body({"schools": [world.orgs["sho1"]]}), "k1")
    assert as_staff.status_code == 401 and disabled.status_code == 401
    assert await world.count("SELECT count(*) FROM broadcasts") == 0


async def test_a_submitted_broadcast_is_delivered_to_a_loopback_sink(world: World) -> None:
    key = await _key(world, "sho2")
    async with world.client(key) as c:
        r = await _submit(c, body({"schools": [world.orgs["sho2"]]}), "deliver-1")
        again = await _submit(c, body({"schools": [world.orgs["sho2"]]}), "deliver-1")
    assert r.status_code == 201 and again.status_code == 200
    with Sink() as sink:
        settings = replace(
            world.settings, routing=replace(world.settings.routing, transport={"*": sink.address})
        )
        engine = await Engine.open(settings)
        try:
            runner = await engine.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        finally:
            await engine.close()
        got = sorted(m.rcpt for m in sink.handler.received)
    assert got == ["saburo@example.jp", "shiro@example.jp"]
