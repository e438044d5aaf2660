"""The role matrix of the second slice's screens (reports, survey) over HTTP, with two boards:
for the teacher, a school administrator, the board and the other board's staff, what is
outside the rights is neither shown nor reachable by URL (a Japanese 403 or 404 page)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from screens.helpers import always_open, client, report, signed_in
from staff.conftest import World
from twoway_staff.conftest import asking_body, create

from .conftest import _town
from .test_screens_sessions import _serve


@pytest.fixture
async def two_boards(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, "http://mail.city.example.jp"):
        await _town(w)
        yield w


async def test_screens_show_and_reach_only_whats_within_the_rights(two_boards: World) -> None:
    w = two_boards
    await always_open(w, "sho1")
    await always_open(w, "sho2")
    await report(w, "jiro@softbank.ne.jp")     # sho1 3-2
    await report(w, "saburo@example.jp")       # sho2
    sho2_survey = await create(w, "admin2", asking_body({"schools": [w.orgs["sho2"]]}, w))
    r = w.classes
    # (login, url, status) -> what must never appear.
    refused = {
        "teacher31": [(f"/staff/reports?class_id={r['sho1-3-2']}", 403),
                      (f"/staff/reports?school_id={w.orgs['sho2']}", 403),
                      (f"/staff/broadcasts/{sho2_survey}/survey", 404)],
        "admin1": [(f"/staff/reports?school_id={w.orgs['sho2']}", 403),
                   (f"/staff/reports?class_id={r['sho2-3-1']}", 403),
                   (f"/staff/reports.csv?school_id={w.orgs['sho2']}", 403),
                   (f"/staff/broadcasts/{sho2_survey}/survey", 404),
                   (f"/staff/broadcasts/{sho2_survey}/survey/answers.csv", 404)],
        "board": [(f"/staff/reports?school_id={w.orgs['tsho']}", 404),
                  (f"/staff/reports?class_id={r['tsho-2-1']}", 403)],
        "tboard": [(f"/staff/reports?school_id={w.orgs['sho1']}", 404),
                   (f"/staff/reports?school_id={w.orgs['sho2']}", 404),
                   (f"/staff/broadcasts/{sho2_survey}/survey", 404)],
        "tteacher": [(f"/staff/reports?class_id={r['sho1-3-1']}", 403)],
    }
    secrets = ("佐藤次郎", "田中三郎", "遠足のお知らせ", "第二小学校")
    for login, probes in refused.items():
        async with client(w) as c:
            await signed_in(c, login)
            for url, status in probes:
                got = await c.get(url)
                assert got.status_code == status, (login, url, got.status_code)
                assert "権限がありません" in got.text or "見つかりません" in got.text
                for secret in secrets:
                    assert secret not in got.text, (login, url, secret)
            # What each may see: their own list works, and shows nothing of others.
            own = await c.get("/staff/reports")
            if login == "tteacher" or login == "tboard":
                assert own.status_code == 200 and "佐藤次郎" not in own.text
                assert "田中三郎" not in own.text
            home = await c.get("/staff/home")
            assert home.status_code == 200
            if login.startswith("t") and login != "teacher31":
                assert 'id="new-reports"' not in home.text, login
    # The positive controls: each sees their own.
    async with client(w) as c:
        await signed_in(c, "admin2")
        assert "田中三郎" in (await c.get("/staff/reports")).text
        assert (await c.get(f"/staff/broadcasts/{sho2_survey}/survey")).status_code == 200
    async with client(w) as c:
        await signed_in(c, "board")
        assert 'id="new-reports">新着 2 件' in (await c.get("/staff/home")).text
        got = await c.get(f"/staff/reports?school_id={w.orgs['sho2']}")
        assert "田中三郎" in got.text
