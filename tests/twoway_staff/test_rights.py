"""Rights on the two-way endpoints: a school never sees another school's reads, answers,
replies or reports; a teacher only their own classes; settings for administrators."""

from __future__ import annotations

from .conftest import World, asking_body, create, report
from .test_reports_api import configure, settings_body


async def test_another_schools_follow_up_is_not_found(world: World) -> None:
    theirs = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]},
                                                       world))
    token = await world.login("admin2")
    async with world.client(token) as c:
        for path in ("reads", "reads/accounts", "survey", "survey/answers",
                     "survey/answers.csv", "replies"):
            r = await c.get(f"/api/staff/broadcasts/{theirs}/{path}")
            assert r.status_code == 404, path
            assert r.json()["error"] == "not_found", path
        r = await c.post(f"/api/staff/broadcasts/{theirs}/remind", json={"purpose": "read"})
        assert r.status_code == 404
    assert await world.count("SELECT count(*) FROM broadcasts") == 1
    assert await world.count(
        "SELECT count(*) FROM audit_log WHERE action LIKE 'twoway.%' AND result = 'denied'"
    ) >= 5


async def test_a_teacher_filters_only_their_own_classes(world: World) -> None:
    mine = await create(world, "teacher31", asking_body(
        {"classes": [world.classes["sho1-3-1"]]}, world))
    token = await world.login("teacher31")
    async with world.client(token) as c:
        ok = await c.get(f"/api/staff/broadcasts/{mine}/reads/accounts",
                         params={"class_id": world.classes["sho1-3-1"]})
        other = await c.get(f"/api/staff/broadcasts/{mine}/reads/accounts",
                            params={"class_id": world.classes["sho1-3-2"]})
        grade = await c.get(f"/api/staff/broadcasts/{mine}/reads/accounts",
                            params={"grade_id": world.grades["sho1-3"]})
    assert ok.status_code == 200 and ok.json()["total"] == 2
    assert other.status_code == 403 and grade.status_code == 403


async def test_reports_stay_within_the_school_and_the_teachers_classes(world: World) -> None:
    await configure(world)
    await report(world, "taro@docomo.ne.jp")
    await report(world, "jiro@softbank.ne.jp")
    admin2 = await world.login("admin2")
    teacher = await world.login("teacher31")
    board = await world.login("board")
    sho1 = world.orgs["sho1"]
    async with world.client(admin2) as a2, world.client(teacher) as t, \
            world.client(board) as b:
        for path in ("/api/staff/reports", "/api/staff/reports.csv", "/api/staff/reports/new",
                     "/api/staff/reports/settings"):
            r = await a2.get(path, params={"school_id": sho1})
            assert r.status_code == 403, path
        # Their own school has none of sho1's reports.
        assert (await a2.get("/api/staff/reports")).json()["total"] == 0
        own = (await t.get("/api/staff/reports")).json()
        assert [r["name"] for r in own["items"]] == ["山田太郎"]
        r = await t.get("/api/staff/reports", params={"class_id": world.classes["sho1-3-2"]})
        assert r.status_code == 403
        r = await t.get("/api/staff/reports.csv", params={"class_id": world.classes["sho1-3-2"]})
        assert r.status_code == 403
        assert (await t.get("/api/staff/reports/settings")).status_code == 403
        r = await t.put("/api/staff/reports/settings", json=settings_body(world))
        assert r.status_code == 403
        r = await a2.put("/api/staff/reports/settings", params={"school_id": sho1},
                         json=settings_body(world, reasons=["他校の理由"]))
        assert r.status_code == 403
        # The board names the school it looks at.
        assert (await b.get("/api/staff/reports")).status_code == 422
        assert (await b.get("/api/staff/reports", params={"school_id": sho1})).json()[
            "total"] == 2
    assert await world.api.staff.pool.fetchval(
        "SELECT reasons FROM report_settings WHERE school_id = $1", sho1) == [
        "発熱", "通院", "家庭の事情"]
