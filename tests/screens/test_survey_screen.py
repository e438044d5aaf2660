"""The survey screen over HTTP: totals with bars, the head count, answers per child, CSV and
the reminder to those who have not answered; invisible to whoever may not see the broadcast."""

from __future__ import annotations

import re

from twoway_staff.conftest import answer, asking_body, create, deliveries

from engine.queue import AttemptResult, Outcome
from screens.conftest import ScreensWorld
from screens.helpers import client, signed_in


async def test_survey_totals_answers_csv_and_reminder(sw: ScreensWorld) -> None:
    w = sw.w
    broadcast = await create(w, "teacher31", asking_body({"classes": [w.classes["sho1-3-1"]]}, w))
    to = await deliveries(w, broadcast)
    # Delivered, as a runner records it (on the real clock the screens' world runs on).
    now = w.api.staff.now()
    claimed = await w.api.queue.claim("test-runner", 100, now, 60)
    await w.api.queue.record("test-runner", [
        AttemptResult(c.id, Outcome.DELIVERED, now, 250) for c in claimed])
    await answer(w, to["taro@docomo.ne.jp"], {"attend": "0", "people": "2"})
    async with client(w) as c:
        token = await signed_in(c, "teacher31")
        bpage = await c.get(f"/staff/broadcasts/{broadcast}")
        assert f'href="/staff/broadcasts/{broadcast}/survey"' in bpage.text
        page = await c.get(f"/staff/broadcasts/{broadcast}/survey")
        assert page.status_code == 200
        html = page.text
        assert "回答した人: <strong>1</strong> 人" in html
        # One bar of two at full width (参加 1, 不参加 0), the head count summed.
        assert re.search(r"参加</span>\s*<span[^>]*><span class=\"bar-fill w100\">", html)
        assert re.search(r"不参加</span>\s*<span[^>]*><span class=\"bar-fill w0\">", html)
        assert "合計: <strong>2</strong>人" in html
        assert "山田太郎" in html and "山田花子" not in html.split("児童生徒ごとの回答")[1]
        csv = await c.get(f"/staff/broadcasts/{broadcast}/survey/answers.csv")
        assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
        assert len(csv.content.decode("utf-8-sig").splitlines()) >= 2
        # The reminder goes to the one who has not answered (hanako), as a new broadcast.
        reminded = await c.post(f"/staff/broadcasts/{broadcast}/survey/remind",
                                data={"csrf": token})
        assert reminded.status_code == 303
        new_id = int(reminded.headers["location"].rsplit("/", 1)[1])
        assert list(await deliveries(w, new_id)) == ["hanako@ezweb.ne.jp"]
        # Without the token: refused, nothing sent.
        before = await w.count("SELECT count(*) FROM broadcasts")
        refused = await c.post(f"/staff/broadcasts/{broadcast}/survey/remind", data={})
        assert refused.status_code == 403
        assert await w.count("SELECT count(*) FROM broadcasts") == before
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = 'twoway.remind'") == 1


async def test_another_schools_survey_is_not_found(sw: ScreensWorld) -> None:
    w = sw.w
    broadcast = await create(w, "admin2", asking_body({"schools": [w.orgs["sho2"]]}, w))
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        for url in (f"/staff/broadcasts/{broadcast}/survey",
                    f"/staff/broadcasts/{broadcast}/survey/answers.csv"):
            r = await c.get(url)
            assert r.status_code == 404 and "見つかりません" in r.text
        r = await c.post(f"/staff/broadcasts/{broadcast}/survey/remind", data={"csrf": token})
        assert r.status_code == 404
    assert await w.count("SELECT count(*) FROM broadcasts") == 1
