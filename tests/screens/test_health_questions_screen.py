"""The health questions on the settings screen over HTTP, without JavaScript: added (keys made
by the screen), edited, reordered, stopped and asked again, each through the API's engine call
and audited ``twoway.report_settings``; the preview shows the guardian's fields; bad input comes
back as typed and changes nothing; the hours and reasons stay as they were; the staff API's PUT
keeps the questions no longer asked unless it asks one of them again."""

from __future__ import annotations

from decimal import Decimal

from engine.twoway import report_settings, set_report_settings
from engine.twoway.questions import Question, QuestionKind
from screens.conftest import ScreensWorld
from screens.helpers import always_open, client, signed_in


async def test_questions_are_added_edited_reordered_and_stopped(sw: ScreensWorld) -> None:
    w = sw.w
    pool = w.api.staff.pool
    sho1 = w.orgs["sho1"]
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        # Before the hours are saved there is nothing to add questions to.
        first = await c.get("/staff/settings/health")
        assert first.status_code == 200 and "先に" in first.text
        refused = await c.post("/staff/settings/health/question", data={
            "csrf": token, "school_id": str(sho1), "key": "", "label": "体温",
            "kind": "number"})
        assert refused.status_code == 422 and "を保存してください" in refused.text
        assert await report_settings(pool, sho1) is None
        await always_open(w, "sho1")
        before = await report_settings(pool, sho1)
        assert before is not None
        base = {"csrf": token, "school_id": str(sho1), "key": ""}
        temp = {**base, "label": "今朝の体温", "kind": "number", "minimum": "34",
                "maximum": "42", "unit": "℃", "required": "1"}
        r = await c.post("/staff/settings/health/question", data=temp)
        assert r.status_code == 303 and r.headers["location"].endswith("done=added")
        cough = {**base, "label": "せきは出ますか", "kind": "single", "options": "はい\nいいえ\n"}
        assert (await c.post("/staff/settings/health/question", data=cough)).status_code == 303
        s = await report_settings(pool, sho1)
        assert s is not None
        assert [q.key for q in s.health_questions] == ["q1", "q2"]
        assert s.health_questions[0] == Question(
            "q1", "今朝の体温", QuestionKind.NUMBER, True, (), Decimal(34), Decimal(42),
            unit="℃")
        assert s.health_questions[1].options == ("はい", "いいえ")
        assert (s.opens, s.closes, s.reasons) == (before.opens, before.closes, before.reasons)
        # Bad input: shown again as typed (422), nothing changed.
        for bad in ({"kind": "single", "options": "はい"}, {"kind": "x"}, {"label": "  "},
                    {"minimum": "abc"}, {"minimum": "1e9"}, {"minimum": "50"}):
            got = await c.post("/staff/settings/health/question",
                               data={**temp, "label": "熱は", **bad})
            assert got.status_code == 422 and 'role="alert"' in got.text, bad
            if bad.get("label") != "  ":
                assert 'value="熱は"' in got.text, bad
        assert await report_settings(pool, sho1) == s
        # The page lists them in order, with the guardian's fields as a preview.
        page = await c.get(f"/staff/settings/health?school_id={sho1}")
        assert page.text.index("今朝の体温") < page.text.index("せきは出ますか")
        assert 'name="q2" value="1" disabled' in page.text and "（必須）" in page.text
        # Edit (the key stays), move up, stop, ask again.
        form = await c.get(f"/staff/settings/health/question?school_id={sho1}&key=q2")
        assert "はい\nいいえ" in form.text and 'value="q2"' in form.text
        r = await c.post("/staff/settings/health/question", data={
            **cough, "key": "q2", "label": "せきやのどの痛みは", "options": "ない\nある\n少し"})
        assert r.status_code == 303
        r = await c.post("/staff/settings/health/move",
                         data={"csrf": token, "school_id": str(sho1), "key": "q2", "to": "up"})
        assert r.status_code == 303
        s = await report_settings(pool, sho1)
        assert s is not None and [q.label for q in s.health_questions] == [
            "せきやのどの痛みは", "今朝の体温"]
        assert s.health_questions[0].options == ("ない", "ある", "少し")
        r = await c.post("/staff/settings/health/off",
                         data={"csrf": token, "school_id": str(sho1), "key": "q1"})
        assert r.status_code == 303
        s = await report_settings(pool, sho1)
        assert s is not None and [q.key for q in s.health_questions] == ["q2"]
        assert [q.key for q in s.questions_off] == ["q1"]
        page = await c.get(f"/staff/settings/health?school_id={sho1}")
        assert "使っていない質問" in page.text and 'name="q1"' not in page.text
        # A new question never takes a stopped one's key (its answers stay its own).
        r = await c.post("/staff/settings/health/question", data={**temp, "label": "脈拍"})
        s = await report_settings(pool, sho1)
        assert s is not None and [q.key for q in s.health_questions] == ["q2", "q3"]
        r = await c.post("/staff/settings/health/on",
                         data={"csrf": token, "school_id": str(sho1), "key": "q1"})
        assert r.status_code == 303
        s = await report_settings(pool, sho1)
        assert s is not None and [q.key for q in s.health_questions] == ["q2", "q3", "q1"]
        assert s.questions_off == ()
        # Unknown keys and a missing token: refused, nothing changed.
        for path, extra in (("/staff/settings/health/off", {"key": "q9"}),
                            ("/staff/settings/health/move", {"key": "zz", "to": "up"})):
            got = await c.post(path, data={"csrf": token, "school_id": str(sho1), **extra})
            assert got.status_code == 422, path
        got = await c.post("/staff/settings/health/off",
                           data={"csrf": "x", "school_id": str(sho1), "key": "q1"})
        assert got.status_code == 403
        assert await report_settings(pool, sho1) == s
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = "
                         "'twoway.report_settings' AND result = 'ok'") == 7


async def test_the_api_keeps_questions_no_longer_asked(sw: ScreensWorld) -> None:
    w = sw.w
    pool, sho1 = w.api.staff.pool, w.orgs["sho1"]
    await always_open(w, "sho1")
    s = await report_settings(pool, sho1)
    assert s is not None
    a = Question("a", "体温", QuestionKind.NUMBER)
    b = Question("b", "せき", QuestionKind.SINGLE, options=("はい", "いいえ"))
    await set_report_settings(w.api.people, sho1, s.opens, s.closes, s.reasons, [a], [b])
    # As the API's PUT calls it: the questions asked only.
    await set_report_settings(w.api.people, sho1, s.opens, s.closes, s.reasons, [a])
    got = await report_settings(pool, sho1)
    assert got is not None and got.questions_off == (b,)
    # Asking "b" again through the API takes it off the other list.
    await set_report_settings(w.api.people, sho1, s.opens, s.closes, s.reasons, [a, b])
    got = await report_settings(pool, sho1)
    assert got is not None and got.health_questions == (a, b) and got.questions_off == ()
