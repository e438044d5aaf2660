"""The role matrix of the 学年と組 screen and the teachers' class list over HTTP, with two
boards: a teacher, a school administrator, the board and the other board's staff. What is
outside the rights is not in the menu, not reachable by URL (a Japanese 403, or 404 for the
other board's) and a POST to it changes nothing (and is audited as refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from screens.helpers import client, signed_in
from staff.conftest import World

from .conftest import _town
from .test_screens_sessions import _serve


@pytest.fixture
async def two_boards(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, ""):
        await _town(w)
        yield w


async def _classes(w: World) -> list[Any]:
    rows = await w.api.staff.pool.fetch(
        "SELECT c.id, c.grade_id, c.name FROM classes c ORDER BY c.id")
    return [tuple(r) for r in rows]


def _refused(got: httpx.Response, status: int, secrets: tuple[str, ...], what: str) -> None:
    assert got.status_code == status, (what, got.status_code, got.text[:300])
    assert "権限がありません" in got.text or "見つかりません" in got.text, what
    for secret in secrets:
        assert secret not in got.text, (what, secret)


async def test_classes_screens_show_and_reach_only_whats_within_the_rights(
    two_boards: World,
) -> None:
    w = two_boards
    before = await _classes(w)
    o, k = w.orgs, w.classes
    sho1, sho2, tsho = (str(o[s]) for s in ("sho1", "sho2", "tsho"))
    # login -> (GET url, status) and (POST url, form, status) that must be refused.
    gets = {
        "teacher31": [("/staff/roster/classes", 403),
                      (f"/staff/roster/classes?school_id={sho1}", 403),
                      (f"/staff/roster/class?class_id={k['sho1-3-2']}", 403),
                      (f"/staff/roster/class?class_id={k['sho2-3-1']}", 403),
                      (f"/staff/roster/class?class_id={k['tsho-2-1']}", 404)],
        "admin1": [(f"/staff/roster/classes?school_id={sho2}", 403),
                   (f"/staff/roster/classes?school_id={tsho}", 403),
                   (f"/staff/roster/class?class_id={k['tsho-2-1']}", 404)],
        "board": [(f"/staff/roster/classes?school_id={tsho}", 404),
                  (f"/staff/roster/class?class_id={k['tsho-2-1']}", 404)],
        "tboard": [(f"/staff/roster/classes?school_id={sho1}", 404),
                   (f"/staff/roster/class?class_id={k['sho1-3-1']}", 404)],
        "tadmin": [(f"/staff/roster/classes?school_id={sho1}", 403)],
        "tteacher": [(f"/staff/roster/class?class_id={k['sho1-3-1']}", 404),
                     ("/staff/roster/classes", 403)],
    }

    def attempts(theirs: str, cls: int, status: int) -> list[tuple[str, dict[str, str], int]]:
        return [("/staff/roster/classes/add", {"school_id": theirs, "grade": "1",
                                                "class_name": "侵入"}, status),
                (f"/staff/roster/classes/{cls}/rename", {"name": "侵入"}, status),
                (f"/staff/roster/classes/{cls}/remove", {}, status)]

    posts = {
        "teacher31": [*attempts(sho1, k["sho1-3-1"], 403),
                      (f"/staff/roster/classes/{k['tsho-2-1']}/remove", {}, 404)],
        "admin1": [*attempts(sho2, k["sho2-3-1"], 403),
                   (f"/staff/roster/classes/{k['tsho-2-1']}/rename", {"name": "侵入"}, 404)],
        "board": [*attempts(tsho, k["tsho-2-1"], 404)],
        "tboard": [*attempts(sho1, k["sho1-3-1"], 404)],
        "tadmin": [*attempts(sho1, k["sho1-3-1"], 404)[1:],
                   ("/staff/roster/classes/add", {"school_id": sho1, "grade": "1",
                                                  "class_name": "侵入"}, 403)],
        "tteacher": attempts(tsho, k["tsho-2-1"], 403),
    }
    secrets = ("山田太郎", "佐藤次郎", "田中三郎", "町田一郎", "第二小学校", "あおば小学校")
    for login in ("teacher31", "admin1", "board", "tboard", "tadmin", "tteacher"):
        teacher = login in ("teacher31", "tteacher")
        async with client(w) as c:
            csrf = await signed_in(c, login)
            home = (await c.get("/staff/home")).text
            assert ('href="/staff/roster/class"' in home) == teacher, login
            hub = (await c.get("/staff/roster")).text
            assert ('href="/staff/roster/classes"' in hub) == (not teacher), login
            assert ('href="/staff/roster/class"' in hub) == teacher, login
            for url, status in gets[login]:
                _refused(await c.get(url), status, secrets, f"{login} GET {url}")
            for url, form, status in posts[login]:
                got = await c.post(url, data={"csrf": csrf, **form})
                _refused(got, status, secrets, f"{login} POST {url}")
    # Nothing changed: the same classes with the same names, no grade 1 made anywhere.
    assert await _classes(w) == before
    assert await w.count("SELECT count(*) FROM grades WHERE grade = 1") == 0
    # The refusals the engine decided are in the audit log as denied.
    assert await w.count("SELECT count(*) FROM audit_log WHERE action LIKE 'class.%' "
                         "AND result = 'denied'") >= 4
    assert await w.count("SELECT count(*) FROM audit_log WHERE action LIKE 'class.%' "
                         "AND result = 'ok'") == 0
    # The positive controls: each administers their own.
    async with client(w) as c:
        csrf = await signed_in(c, "tadmin")
        page = await c.get("/staff/roster/classes")
        assert page.status_code == 200 and "2年" in page.text and "第一小学校" not in page.text
        added = await c.post("/staff/roster/classes/add", data={
            "csrf": csrf, "school_id": tsho, "grade": "2", "class_name": "2"})
        assert added.status_code == 303
    async with client(w) as c:
        await signed_in(c, "tteacher")
        mine = await c.get("/staff/roster/class")
        assert mine.status_code == 200 and "町田一郎" in mine.text and "山田太郎" not in mine.text
