"""Rights across schools and classes, on every broadcast endpoint and the audit log: a school
never sees, counts or sends to another school's people; a teacher only their classes."""

from __future__ import annotations

from typing import Any

from .conftest import World
from .test_broadcasts import body


async def _send(world: World, login: str, audience: dict[str, Any]) -> int:
    token = await world.login(login)
    async with world.client(token) as c:
        r = await c.post("/api/staff/broadcasts", json=body(audience))
    assert r.status_code == 201, r.text
    return int(r.json()["broadcast_id"])


async def test_a_school_cannot_send_to_another_schools_people(world: World) -> None:
    token = await world.login("admin1")
    other = {
        "school": {"schools": [world.orgs["sho2"]]},
        "grade": {"grades": [world.grades["sho2-3"]]},
        "class": {"classes": [world.classes["sho2-3-1"]]},
        "group": {"groups": [world.groups["sho2見守り"]]},
        "board group": {"groups": [world.groups["city全体"]]},
        "board": {"board": True},
        "mixed": {"schools": [world.orgs["sho1"]], "classes": [world.classes["sho2-3-1"]]},
    }
    async with world.client(token) as c:
        for name, audience in other.items():
            r = await c.post("/api/staff/broadcasts", json=body(audience))
            assert r.status_code == 403, name
            assert "権限がありません" in r.json()["message"], name
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
    denied = await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'broadcast.create' AND result = 'denied'"
    )
    assert denied == len(other)


async def test_a_school_cannot_see_count_or_cancel_another_schools_broadcast(
    world: World,
) -> None:
    theirs = await _send(world, "admin2", {"schools": [world.orgs["sho2"]]})
    mine = await _send(world, "admin1", {"schools": [world.orgs["sho1"]]})
    token = await world.login("admin1")
    async with world.client(token) as c:
        for path in ("", "/recipients", "/recipients.csv"):
            r = await c.get(f"/api/staff/broadcasts/{theirs}{path}")
            assert r.status_code == 404, path
            assert r.json()["error"] == "not_found"
        assert (await c.post(f"/api/staff/broadcasts/{theirs}/cancel")).status_code == 404
        listed = (await c.get("/api/staff/broadcasts")).json()
        # Filtering by the other school shows nothing either.
        other = (await c.get(
            "/api/staff/broadcasts", params={"organisation_id": world.orgs["sho2"]})).json()
    assert [b["id"] for b in listed["items"]] == [mine] and listed["total"] == 1
    assert other["total"] == 0
    # Nothing was cancelled.
    assert await world.count(
        "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 AND state = 'queued'", theirs
    ) == 2


async def test_a_teacher_sends_only_to_their_classes_and_groups(world: World) -> None:
    token = await world.login("teacher31")
    async with world.client(token) as c:
        own = await c.post("/api/staff/broadcasts", json=body(
            {"classes": [world.classes["sho1-3-1"]], "groups": [world.groups["sho1見守り"]]}))
        assert own.status_code == 201 and own.json()["recipients"] == 3
        for audience in (
            {"classes": [world.classes["sho1-3-2"]]},  # same school, another class
            {"grades": [world.grades["sho1-3"]]},  # the whole grade
            {"schools": [world.orgs["sho1"]]},
            {"classes": [world.classes["sho2-3-1"]]},
            {"groups": [world.groups["sho2見守り"]]},
        ):
            r = await c.post("/api/staff/broadcasts", json=body(audience))
            assert r.status_code == 403, audience
    assert await world.count("SELECT count(*) FROM broadcasts") == 1


async def test_a_teacher_sees_only_their_own_broadcasts(world: World) -> None:
    school_wide = await _send(world, "admin1", {"schools": [world.orgs["sho1"]]})
    own = await _send(world, "teacher31", {"classes": [world.classes["sho1-3-1"]]})
    token = await world.login("teacher31")
    async with world.client(token) as c:
        listed = (await c.get("/api/staff/broadcasts")).json()
        assert (await c.get(f"/api/staff/broadcasts/{school_wide}/recipients")).status_code == 404
        assert (await c.get(f"/api/staff/broadcasts/{own}/recipients")).status_code == 200
    assert [b["id"] for b in listed["items"]] == [own]
    # The school's administrator sees both; the board sees everything.
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        assert (await c.get("/api/staff/broadcasts")).json()["total"] == 2
    board = await world.login("board")
    async with world.client(board) as c:
        assert (await c.get(f"/api/staff/broadcasts/{own}")).status_code == 200


async def test_the_board_sends_to_everyone(world: World) -> None:
    bid = await _send(world, "board", {"board": True})
    assert await world.count(
        "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", bid
    ) == 6


async def test_staff_management_stays_within_the_school(world: World) -> None:
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        mine = (await c.get("/api/staff/accounts")).json()
        other = await c.post(f"/api/staff/accounts/{world.staff['admin2']}/disable")
        board_account = await c.post("/api/staff/accounts", json={
            "login": "newboard", "name": "新任", "role": "board",
            "organisation_id": world.orgs["city"], "password": "long enough pw"})
        other_school = await c.post("/api/staff/accounts", json={
            "login": "t2", "name": "他校", "role": "teacher",
            "organisation_id": world.orgs["sho2"], "password": "long enough pw"})
        teacher = await c.post("/api/staff/accounts", json={
            "login": "t1", "name": "新任教員", "role": "teacher",
            "organisation_id": world.orgs["sho1"], "password": "long enough pw",
            "class_ids": [world.classes["sho1-4-1"]]})
        foreign_class = await c.post("/api/staff/accounts", json={
            "login": "t3", "name": "教員", "role": "teacher",
            "organisation_id": world.orgs["sho1"], "password": "long enough pw",
            "class_ids": [world.classes["sho2-3-1"]]})
        keys = await c.get("/api/staff/api-keys")
    assert {m["login"] for m in mine} == {"admin1", "teacher31"}
    assert other.status_code == 404
    assert board_account.status_code == 403 and other_school.status_code == 403
    assert teacher.status_code == 201 and teacher.json()["class_ids"] == [
        world.classes["sho1-4-1"]
    ]
    assert foreign_class.status_code == 422
    assert keys.status_code == 403


async def test_audit_log_is_the_boards_and_each_schools_own(world: World) -> None:
    await _send(world, "admin1", {"schools": [world.orgs["sho1"]]})
    await _send(world, "admin2", {"schools": [world.orgs["sho2"]]})
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        own = (await c.get("/api/staff/audit", params={"limit": 1000})).json()
        snoop = (await c.get(
            "/api/staff/audit", params={"organisation_id": world.orgs["sho2"]})).json()
        verify = await c.get("/api/staff/audit/verify")
    assert own["total"] > 0
    assert {e["organisation_id"] for e in own["items"]} == {world.orgs["sho1"]}
    assert "admin2" not in {e["actor_name"] for e in own["items"]}
    assert {e["organisation_id"] for e in snoop["items"]} <= {world.orgs["sho1"]}
    assert verify.status_code == 403
    teacher = await world.login("teacher31")
    async with world.client(teacher) as c:
        assert (await c.get("/api/staff/audit")).status_code == 403
        assert (await c.get("/api/staff/audit.csv")).status_code == 403
    board = await world.login("board")
    async with world.client(board) as c:
        every = (await c.get("/api/staff/audit", params={"limit": 1000})).json()
    assert {"admin1", "admin2", "board"} <= {e["actor_name"] for e in every["items"]}
