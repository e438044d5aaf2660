"""The role matrix of the people (名簿) screens over HTTP, with two boards: a teacher, a school
administrator, the board and the other board's staff. What is outside the rights is not in
the menu, not reachable by URL (a Japanese 403 or 404 page, nothing of the other side shown)
and a POST to it changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

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


async def _account(w: World, school: str, number: int = 1) -> int:
    return await w.count(
        "SELECT a.id FROM accounts a JOIN classes c ON c.id = a.class_id "
        "WHERE a.school_id = $1 AND a.number = $2 ORDER BY a.id LIMIT 1",
        w.orgs[school], number,
    )


async def _names(w: World) -> dict[int, bytes]:
    rows = await w.api.staff.pool.fetch("SELECT id, name_sealed, state FROM accounts")
    return {r["id"]: bytes(r["name_sealed"]) + r["state"].encode() for r in rows}


def _refused(got: httpx.Response, status: int, secrets: tuple[str, ...], what: str) -> None:
    assert got.status_code == status, (what, got.status_code, got.text[:300])
    assert "権限がありません" in got.text or "見つかりません" in got.text, what
    for secret in secrets:
        assert secret not in got.text, (what, secret)


async def test_people_screens_show_and_reach_only_whats_within_the_rights(
    two_boards: World,
) -> None:
    w = two_boards
    sho1, sho2, tsho = [await _account(w, s) for s in ("sho1", "sho2", "tsho")]
    before = await _names(w)
    broadcasts = await w.count("SELECT count(*) FROM broadcasts")
    csv_sho2 = "学校,学年,組,番号,氏名\nsho2,3,1,9,侵入太郎\n".encode("cp932")
    # login -> (GET url, status) and (POST url, form, status) that must be refused.
    gets = {
        "teacher31": [(f"/staff/roster/accounts?school_id={w.orgs['sho1']}", 403),
                      (f"/staff/roster/accounts/{sho1}", 403), ("/staff/roster/import", 403),
                      ("/staff/roster/schools", 403), ("/staff/roster/notices", 403),
                      ("/staff/roster/invitations", 403)],
        "admin1": [(f"/staff/roster/accounts?school_id={w.orgs['sho2']}", 403),
                   (f"/staff/roster/accounts/{sho2}", 403),
                   (f"/staff/roster/notices.pdf?school_id={w.orgs['sho2']}&address=a@b.jp",
                    403),
                   (f"/staff/roster/invitations?school_id={w.orgs['sho2']}", 403),
                   ("/staff/roster/schools", 403)],
        "board": [(f"/staff/roster/accounts?school_id={w.orgs['tsho']}", 404),
                  (f"/staff/roster/accounts/{tsho}", 404),
                  (f"/staff/roster/schools/{w.orgs['tsho']}/close", 404),
                  (f"/staff/roster/rate?school_id={w.orgs['tsho']}", 404)],
        "tboard": [(f"/staff/roster/accounts?school_id={w.orgs['sho1']}", 404),
                   (f"/staff/roster/accounts/{sho1}", 404),
                   (f"/staff/roster/schools/{w.orgs['sho2']}/close", 404)],
        "tadmin": [(f"/staff/roster/accounts/{sho1}", 404),
                   (f"/staff/roster/accounts?school_id={w.orgs['sho1']}", 403)],
    }
    posts = {
        "teacher31": [(f"/staff/roster/accounts/{sho1}/edit", {"name": "改ざん"}, 403),
                      (f"/staff/roster/accounts/{sho1}/close", {"reason": "other"}, 403),
                      ("/staff/roster/schools", {"code": "x1", "name": "x", "kind": "elementary"},
                       403)],
        "admin1": [(f"/staff/roster/accounts/{sho2}/edit", {"name": "改ざん"}, 403),
                   (f"/staff/roster/accounts/{sho2}/move", {"grade": "3", "class_name": "2"},
                    403),
                   (f"/staff/roster/accounts/{sho2}/close", {"reason": "other"}, 403),
                   (f"/staff/roster/accounts/{sho2}/contacts", {"address": "x@example.jp"},
                    403),
                   ("/staff/roster/accounts/new", {"school_id": str(w.orgs["sho2"]),
                                                   "name": "侵入", "grade": "3"}, 403),
                   (f"/staff/roster/schools/{w.orgs['sho2']}/close", {}, 403),
                   ("/staff/roster/invitations", {"school_id": str(w.orgs["sho2"])}, 403)],
        "board": [(f"/staff/roster/accounts/{tsho}/edit", {"name": "改ざん"}, 404),
                  (f"/staff/roster/schools/{w.orgs['tsho']}/rename", {"name": "改名"}, 404),
                  (f"/staff/roster/schools/{w.orgs['tsho']}/close", {}, 404)],
        "tboard": [(f"/staff/roster/accounts/{sho1}/close", {"reason": "other"}, 404),
                   (f"/staff/roster/schools/{w.orgs['sho1']}/close", {}, 404)],
    }
    secrets = ("山田太郎", "佐藤次郎", "田中三郎", "町田一郎")
    for login in ("teacher31", "admin1", "board", "tboard", "tadmin"):
        async with client(w) as c:
            csrf = await signed_in(c, login)
            home = (await c.get("/staff/home")).text
            if login == "teacher31":
                assert 'href="/staff/roster/rate"' in home
                assert 'href="/staff/roster"' not in home
            else:
                assert 'href="/staff/roster"' in home
            hub = (await c.get("/staff/roster")).text
            assert ('href="/staff/roster/schools"' in hub) == login.endswith("board"), login
            assert ('href="/staff/roster/import"' in hub) == (login != "teacher31"), login
            for url, status in gets.get(login, []):
                _refused(await c.get(url), status, secrets, f"{login} GET {url}")
            for url, form, status in posts.get(login, []):
                got = await c.post(url, data={"csrf": csrf, **form})
                _refused(got, status, secrets, f"{login} POST {url}")
            if login == "admin1":
                got = await c.post("/staff/roster/import", data={"csrf": csrf},
                                   files={"file": ("roster.csv", csv_sho2, "text/csv")})
                assert got.status_code in (403, 422), got.text[:300]
                assert 'name="upload"' not in got.text
            rate = await c.get("/staff/roster/rate")
            assert rate.status_code == 200
            if login == "teacher31":
                assert "第二小学校" not in rate.text and "4年" not in rate.text
                assert "3年" in rate.text
            if login.startswith("t") and login != "teacher31":
                assert "第一小学校" not in rate.text and "第二小学校" not in rate.text
    # Nothing changed: no name, no state, no new account, no school added or closed.
    assert await _names(w) == before
    assert await w.count("SELECT count(*) FROM organisations WHERE closed_at IS NOT NULL") == 0
    assert await w.count("SELECT count(*) FROM organisations WHERE code = 'x1'") == 0
    assert await w.count("SELECT count(*) FROM broadcasts") == broadcasts
    # The positive controls: each administers their own.
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        page = await c.get(f"/staff/roster/accounts/{sho1}")
        assert page.status_code == 200 and "山田太郎" in page.text
        assert "taro@docomo.ne.jp" not in page.text and "ta…@docomo.ne.jp" in page.text
        moved = await c.post(f"/staff/roster/accounts/{sho1}/edit",
                             data={"csrf": csrf, "name": "山田太一"})
        assert moved.status_code == 303
        assert "山田太一" in (await c.get(f"/staff/roster/accounts/{sho1}")).text
    async with client(w) as c:
        await signed_in(c, "board")
        listed = await c.get("/staff/roster/schools")
        assert "第二小学校" in listed.text and "あおば小学校" not in listed.text
