"""The role matrix of the compose and broadcast actions added by the third compose slice
(count, draft, copy, resend, remind, filters), over HTTP with two boards: what is outside the
rights is neither shown nor reachable by URL, and a refused action sends nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from screens.helpers import client, signed_in
from staff.conftest import World
from twoway_staff.conftest import asking_body, create

from .conftest import _town
from .test_screens_sessions import _serve

SENDER = "sho1@example.jp"


@pytest.fixture
async def two_boards(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, "http://mail.city.example.jp"):
        await _town(w)
        yield w


async def test_compose_and_broadcast_actions_stay_within_the_rights(two_boards: World) -> None:
    w = two_boards
    # A broadcast to 3-2 (not the teacher's class), asking for a read and answers.
    other_class = await create(w, "admin1", asking_body({"classes": [w.classes["sho1-3-2"]]}, w))
    sho2 = await create(w, "admin2", asking_body({"schools": [w.orgs["sho2"]]}, w))
    before = await w.count("SELECT count(*) FROM broadcasts")
    actions = ("/resend?failed=true", "/remind?purpose=read", "/remind?purpose=survey")

    def audience(to: str) -> dict[str, object]:
        return {"to": [to], "sender": SENDER, "category": "notice", "priority": "normal",
                "subject": "件名", "body": "本文", "once": "k"}

    refused = {
        # (method, url, form) -> status
        "teacher31": [
            ("GET", f"/staff/broadcasts/{other_class}", None, 404),
            ("GET", f"/staff/compose/from?copy={other_class}", None, 404),
            *[("GET", f"/staff/broadcasts/{other_class}{a}", None, 404) for a in actions],
            *[("POST", f"/staff/broadcasts/{other_class}{a}", {}, 404) for a in actions],
            ("GET", "/staff/compose/from?template=999999", None, 404),
            ("POST", "/staff/compose/count", audience(f"group:{w.groups['city全体']}"), 403),
            ("POST", "/staff/compose/count.json", audience(f"class:{w.classes['sho1-3-2']}"),
             403),
            ("POST", "/staff/compose/confirm", audience(f"school:{w.orgs['sho1']}"), 403),
            ("POST", "/staff/compose/send", audience(f"group:{w.groups['city全体']}"), 403),
        ],
        "admin1": [
            ("GET", f"/staff/compose/from?copy={sho2}", None, 404),
            *[("POST", f"/staff/broadcasts/{sho2}{a}", {}, 404) for a in actions],
            ("GET", f"/staff/broadcasts/{other_class}?class_id={w.classes['sho2-3-1']}",
             None, 403),
            ("POST", "/staff/compose/send", audience(f"school:{w.orgs['sho2']}"), 403),
        ],
        "tboard": [
            ("GET", f"/staff/compose/from?copy={other_class}", None, 404),
            *[("GET", f"/staff/broadcasts/{sho2}{a}", None, 404) for a in actions],
            # Another board's school is an unknown school, on the form (count: as JSON).
            ("POST", "/staff/compose/count.json", audience(f"school:{w.orgs['sho1']}"), 422),
        ],
    }
    secrets = ("遠足のお知らせ", "来週は遠足です", "佐藤次郎", "jiro@softbank.ne.jp")
    for login, probes in refused.items():
        async with client(w) as c:
            csrf = await signed_in(c, login)
            for method, url, data, status in probes:
                if method == "GET":
                    got = await c.get(url)
                else:
                    got = await c.post(url, data={"csrf": csrf, **(data or {})})
                assert got.status_code == status, (login, url, got.status_code, got.text[:300])
                assert any(no in got.text for no in ("権限がありません", "見つかりません",
                                                     "はありません")), (login, url)
                for secret in secrets:
                    assert secret not in got.text, (login, url, secret)
    assert await w.count("SELECT count(*) FROM broadcasts") == before
