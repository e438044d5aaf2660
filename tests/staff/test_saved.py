"""Templates of a school and the board, a teacher's drafts, and sending a draft once."""

from __future__ import annotations

from .conftest import World

TEMPLATE = {"name": "台風で休校", "subject": "臨時休校のお知らせ", "body": "台風のため休校します。",
            "category": "emergency", "priority": "emergency"}


async def test_templates_are_shared_within_a_school_and_the_boards_with_all(
    world: World,
) -> None:
    admin1, admin2, teacher, board = [
        await world.login(x) for x in ("admin1", "admin2", "teacher31", "board")
    ]
    async with world.client(admin1) as c:
        school = await c.post("/api/staff/templates", json=TEMPLATE)
    async with world.client(board) as c:
        common = await c.post("/api/staff/templates", json={**TEMPLATE, "name": "市の共通"})
    assert school.status_code == 201 and common.status_code == 201
    tid = school.json()["id"]
    async with world.client(teacher) as c:
        seen = {t["name"] for t in (await c.get("/api/staff/templates")).json()}
        made = await c.post("/api/staff/templates", json={**TEMPLATE, "name": "教員の"})
        change = await c.put(f"/api/staff/templates/{tid}", json={**TEMPLATE, "name": "x"})
    assert seen == {"台風で休校", "市の共通"}
    assert made.status_code == 403 and change.status_code == 403
    async with world.client(admin2) as c:
        seen2 = {t["name"] for t in (await c.get("/api/staff/templates")).json()}
        assert (await c.get(f"/api/staff/templates/{tid}")).status_code == 404
        assert (await c.delete(f"/api/staff/templates/{tid}")).status_code == 404
    assert seen2 == {"市の共通"}
    async with world.client(admin1) as c:
        changed = await c.put(f"/api/staff/templates/{tid}", json={**TEMPLATE, "body": "新"})
        assert changed.status_code == 200 and changed.json()["body"] == "新"
        assert (await c.delete(f"/api/staff/templates/{tid}")).status_code == 204
        assert (await c.get(f"/api/staff/templates/{tid}")).status_code == 404


async def test_a_draft_is_its_authors_and_is_sent_once(world: World) -> None:
    teacher = await world.login("teacher31")
    draft = {**TEMPLATE, "name": "明日の連絡", "sender": "sho1@example.jp",
             "audience": {"classes": [world.classes["sho1-3-1"]]}}
    async with world.client(teacher) as c:
        made = await c.post("/api/staff/drafts", json=draft)
        assert made.status_code == 201, made.text
        did = made.json()["id"]
        assert made.json()["audience"]["classes"] == [world.classes["sho1-3-1"]]
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        assert (await c.get(f"/api/staff/drafts/{did}")).status_code == 404
        assert (await c.get("/api/staff/drafts")).json() == []
        assert (await c.post(f"/api/staff/drafts/{did}/send")).status_code == 404
    async with world.client(teacher) as c:
        sent = await c.post(f"/api/staff/drafts/{did}/send")
        twice = await c.post(f"/api/staff/drafts/{did}/send")
        left = (await c.get("/api/staff/drafts")).json()
    assert sent.status_code == 201 and sent.json()["recipients"] == 2
    assert twice.status_code == 404 and left == []
    assert await world.count("SELECT count(*) FROM broadcasts") == 1


async def test_a_draft_outside_the_rights_is_refused_and_kept(world: World) -> None:
    teacher = await world.login("teacher31")
    draft = {**TEMPLATE, "name": "他の組", "sender": "sho1@example.jp",
             "audience": {"classes": [world.classes["sho1-3-2"]]}}
    async with world.client(teacher) as c:
        did = (await c.post("/api/staff/drafts", json=draft)).json()["id"]
        refused = await c.post(f"/api/staff/drafts/{did}/send")
        kept = await c.get(f"/api/staff/drafts/{did}")
        no_audience = (await c.post("/api/staff/drafts", json={"name": "メモ"})).json()["id"]
        empty = await c.post(f"/api/staff/drafts/{no_audience}/send")
    assert refused.status_code == 403 and kept.status_code == 200
    assert empty.status_code == 422 and "配信先" in empty.json()["message"]
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
