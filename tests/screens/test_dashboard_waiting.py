"""The dashboard's unread / unanswered counts: per broadcast that asks for read confirmation or
answers, the delivered mails still waiting, the same numbers as the broadcast page's filters
they link to; a broadcast that asks nothing shows none."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from security.test_screens_sessions import _serve
from staff.conftest import World
from twoway_staff.conftest import answer, asking_body, create, deliver_all, deliveries, read

from screens.helpers import client, signed_in


@pytest.fixture
async def cw(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, "http://mail.city.example.jp"):
        yield w


def _waiting(html: str, bid: int) -> dict[str, int]:
    found = re.search(rf'<p class="waiting" id="waiting-{bid}">(.*?)</p>', html, re.S)
    assert found, f"no counts for broadcast {bid}"
    return {kind: int(n) for kind, n in re.findall(
        r'\?(unread|unanswered)=true">未(?:確認|回答) <strong>(\d+)</strong> 件', found.group(1))}


async def _filter_total(c: object, bid: int, which: str) -> int:
    page = await c.get(f"/staff/broadcasts/{bid}?{which}=true")  # type: ignore[attr-defined]
    found = re.search(r"<p>(\d+) 件", page.text)
    assert found, page.text[:500]
    return int(found.group(1))


async def test_dashboard_counts_unread_and_unanswered_as_the_filters_do(cw: World) -> None:
    w, sho1 = cw, cw.orgs["sho1"]
    asking = await create(w, "admin1", asking_body({"schools": [sho1]}, w))
    reads_only = await create(w, "admin1", {**asking_body({"schools": [sho1]}, w),
                                            "questions": [], "answer_deadline": None})
    plain = await create(w, "admin1", {
        "sender": "sho1@example.jp", "subject": "お知らせ", "body": "本文",
        "audience": {"schools": [sho1]}})
    await deliver_all(w)
    d = await deliveries(w, asking)
    delivered = len(d)
    assert delivered >= 3
    await read(w, d["taro@docomo.ne.jp"])
    await read(w, d["jiro@softbank.ne.jp"])
    await answer(w, d["taro@docomo.ne.jp"], {"attend": "0"})
    await read(w, (await deliveries(w, reads_only))["taro@docomo.ne.jp"])
    async with client(w) as c:
        await signed_in(c, "admin1")
        home = (await c.get("/staff/home")).text
        got = _waiting(home, asking)
        assert got["unread"] == delivered - 2
        assert got["unanswered"] == await _filter_total(c, asking, "unanswered")
        assert got["unread"] == await _filter_total(c, asking, "unread")
        assert 0 < got["unanswered"] < delivered
        assert _waiting(home, reads_only) == {"unread": delivered - 1}
        assert f'id="waiting-{plain}"' not in home
        # An answer more and the count follows.
        await answer(w, d["jiro@softbank.ne.jp"], {"attend": "1"})
        again = _waiting((await c.get("/staff/home")).text, asking)
        assert again["unanswered"] == got["unanswered"] - 1
        assert again["unanswered"] == await _filter_total(c, asking, "unanswered")
