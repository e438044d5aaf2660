"""GET /api/staff/organisation: the schools, grades, classes and groups each role may name in
an audience, with ids an application can send to at once."""

from __future__ import annotations

from typing import Any

from .conftest import World


async def _org(w: World, token: str) -> dict[str, Any]:
    async with w.client(token) as c:
        r = await c.get("/api/staff/organisation")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(o: dict[str, Any], kind: str) -> set[int]:
    return {x["id"] for x in o[kind]}


async def test_each_role_sees_what_it_may_send_to(world: World) -> None:
    w = world
    board = await _org(w, await w.login("board"))
    assert board["board"]["id"] == w.orgs["city"]
    assert [s["code"] for s in board["schools"]] == ["sho1", "sho2"]
    # Every class and grade of the roster (sho2 5-1 too, which the world does not name).
    assert _ids(board, "classes") == set(w.classes.values()) | {
        c["id"] for c in board["classes"] if c["grade"] == 5}
    assert len(board["classes"]) == await w.count("SELECT count(*) FROM classes") == 5
    assert set(w.grades.values()) < _ids(board, "grades")
    assert _ids(board, "groups") == set(w.groups.values())
    klass = next(c for c in board["classes"] if c["id"] == w.classes["sho1-3-2"])
    assert klass == {"id": w.classes["sho1-3-2"], "school_id": w.orgs["sho1"],
                     "grade_id": w.grades["sho1-3"], "grade": 3, "name": "2"}

    admin = await _org(w, await w.login("admin1"))
    assert admin["board"] is None
    assert _ids(admin, "schools") == {w.orgs["sho1"]}
    assert _ids(admin, "classes") == {w.classes[k] for k in ("sho1-3-1", "sho1-3-2", "sho1-4-1")}
    # Not the board's group (it reaches other schools) nor the other school's.
    assert _ids(admin, "groups") == {w.groups["sho1見守り"]}

    teacher = await _org(w, await w.login("teacher31"))
    assert _ids(teacher, "classes") == {w.classes["sho1-3-1"]}
    assert _ids(teacher, "grades") == {w.grades["sho1-3"]}
    assert _ids(teacher, "schools") == {w.orgs["sho1"]}
    assert _ids(teacher, "groups") == {w.groups["sho1見守り"]}


async def test_the_ids_listed_are_an_audience_the_api_accepts(world: World) -> None:
    w = world
    token = await w.login("teacher31")
    o = await _org(w, token)
    async with w.client(token) as c:
        made = await c.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "連絡", "body": "本文",
            "audience": {"classes": [o["classes"][0]["id"]]},
        })
    assert made.status_code == 201, made.text
    assert made.json()["recipients"] == 2


async def test_without_sign_in_it_is_refused(world: World) -> None:
    async with world.client() as c:
        r = await c.get("/api/staff/organisation")
    assert r.status_code == 401
