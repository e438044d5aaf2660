"""Two-way needs a way back: without [http] public_url a broadcast asking for reads or answers
is refused (422, plain Japanese) and nothing is stored; one without asks goes as before."""

from __future__ import annotations

from dataclasses import replace

from fastapi import FastAPI
from staff.conftest import World
from support import served

from admin_api.staff import mount_staff

from .conftest import SENDER, asking_body


async def test_asking_without_a_public_url_is_refused_and_nothing_is_stored(
    world: World,
) -> None:
    api = replace(world.api, staff=replace(world.api.staff, public_url=""), public_url="")
    app = FastAPI()
    mount_staff(app, api)
    pool = api.people.pool
    before = await pool.fetchval("SELECT count(*) FROM broadcasts")
    token = await world.login("admin1")
    async with served(app) as base_url:
        local = replace(world, base_url=base_url)
        async with local.client(token) as c:
            audience = {"schools": [world.orgs["sho1"]]}
            variants: list[dict[str, object]] = [
                {}, {"read_confirmation": None}, {"questions": [], "answer_deadline": None},
            ]
            for extra in variants:
                body = asking_body(audience, world, **extra)
                r = await c.post("/api/staff/broadcasts", json=body)
                assert r.status_code == 422, r.text
                assert "public_url" in r.text and "既読確認" in r.text
            assert await pool.fetchval("SELECT count(*) FROM broadcasts") == before
            plain = await c.post("/api/staff/broadcasts", json={
                "sender": SENDER, "subject": "お知らせ", "body": "本文", "audience": audience})
            assert plain.status_code == 201, plain.text
