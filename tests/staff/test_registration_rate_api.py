"""GET /api/staff/registration-rate over HTTP: the rate per school, grade and class within the
caller's rights (the board its schools, a school its own, a teacher their classes), and another
board's or school's roster never shown."""

from __future__ import annotations

from typing import Any

from .conftest import World


async def _rate(w: World, token: str, school: str | None = None) -> tuple[int, Any]:
    async with w.client(token) as c:
        r = await c.get("/api/staff/registration-rate",
                        params={"school": school} if school else None)
    return r.status_code, r.json()


def _row(items: list[dict[str, Any]], school: str, grade: int | None = None,
         class_name: str | None = None) -> dict[str, Any]:
    [row] = [i for i in items if (i["school"], i["grade"], i["class_name"])
             == (school, grade, class_name)]
    return row


async def test_rates_per_school_grade_and_class_within_each_role(world: World) -> None:
    w = world
    # Hanako's (sho1 3-1 no. 2) only address is not confirmed yet.
    await w.api.staff.pool.execute(
        "UPDATE contacts SET confirmed_at = NULL WHERE id IN (SELECT ca.contact_id "
        "FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id "
        "WHERE a.class_id = $1 AND a.number = 2)", w.classes["sho1-3-1"])

    code, board = await _rate(w, await w.login("board"))
    assert code == 200, board
    items = board["items"]
    assert {i["school"] for i in items} == {"sho1", "sho2"}
    sho1 = _row(items, "sho1")
    assert (sho1["accounts"], sho1["registered_accounts"]) == (4, 3)
    assert sho1["account_rate"] == 0.75
    klass = _row(items, "sho1", 3, "1")
    assert (klass["accounts"], klass["registered_accounts"], klass["confirmed_contacts"]) == (
        2, 1, 1)
    assert klass["account_rate"] == 0.5
    assert _row(items, "sho1", 3)["accounts"] == 3
    assert _row(items, "sho2")["account_rate"] == 1.0

    code, admin = await _rate(w, await w.login("admin1"))
    assert code == 200
    assert {i["school"] for i in admin["items"]} == {"sho1"}
    # A school admin naming the other school learns nothing of it.
    code, other = await _rate(w, await w.login("admin1"), "sho2")
    code_none, nobody = await _rate(w, await w.login("admin1"), "sho9")
    assert code == code_none == 422, other
    assert other["message"].startswith("学校「sho2」は登録されていません")
    assert nobody["message"].startswith("学校「sho9」は登録されていません")
    assert "第二" not in str(other)

    code, teacher = await _rate(w, await w.login("teacher31"))
    assert code == 200
    assert {i["class_name"] for i in teacher["items"] if i["class_name"]} == {"1"}
    assert {i["grade"] for i in teacher["items"] if i["grade"]} == {3}
    assert _row(teacher["items"], "sho1")["accounts"] == 2


async def test_rate_needs_sign_in(world: World) -> None:
    async with world.client() as c:
        r = await c.get("/api/staff/registration-rate")
    assert r.status_code == 401
