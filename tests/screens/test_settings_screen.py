"""The settings screen over HTTP, as a browser without JavaScript uses it: a school's report
hours (saved, audited, bad input changing nothing), templates (new, edit, delete; the board's
shown but not changeable by a school), and allowed senders (the board adds and removes them;
a school's administrator reads their school's)."""

from __future__ import annotations

from datetime import time

from engine.staff.senders import list_senders
from engine.twoway import report_settings
from engine.twoway.notify import notify_teachers_of
from screens.conftest import ScreensWorld
from screens.helpers import client, csrf_of, signed_in


async def _audit(sw: ScreensWorld, action: str, result: str = "ok") -> int:
    return await sw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = $1 AND result = $2", action, result
    )


async def test_report_hours_are_saved_audited_and_bad_input_changes_nothing(
    sw: ScreensWorld,
) -> None:
    w = sw.w
    sho1 = w.orgs["sho1"]
    async with client(w) as c:
        await signed_in(c, "admin1")
        page = await c.get("/staff/settings")
        assert page.status_code == 200 and "第一小学校" in page.text
        assert "まだ設定されていません" in page.text
        token = csrf_of(page.text)
        form = {"csrf": token, "school_id": str(sho1), "opens": "07:30", "closes": "10:15",
                "reasons": "発熱\n通院\n\n家庭の事情", "notify": "1"}
        # No token: refused, nothing stored.
        assert (await c.post("/staff/settings/hours", data={**form, "csrf": "x"})
                ).status_code == 403
        assert await report_settings(w.api.staff.pool, sho1) is None
        done = await c.post("/staff/settings/hours", data=form)
        assert done.status_code == 303
        assert done.headers["location"] == f"/staff/settings?school_id={sho1}&done=hours"
        s = await report_settings(w.api.staff.pool, sho1)
        assert s is not None and (s.opens, s.closes) == (time(7, 30), time(10, 15))
        assert s.reasons == ("発熱", "通院", "家庭の事情")
        assert await notify_teachers_of(w.api.staff.pool, sho1)
        again = await c.get(done.headers["location"])
        assert "受付設定を保存しました" in again.text and 'value="07:30"' in again.text
        # Bad input: a Japanese 422, the settings as they were.
        for bad in ({"opens": "10:15"}, {"closes": "25:00"}, {"reasons": "  \n"}):
            r = await c.post("/staff/settings/hours", data={**form, **bad, "notify": ""})
            assert r.status_code == 422 and "入力を確認してください" in r.text, bad
        assert await report_settings(w.api.staff.pool, sho1) == s
        assert await notify_teachers_of(w.api.staff.pool, sho1)
    assert await _audit(sw, "twoway.report_settings") == 1
    assert await _audit(sw, "twoway.report_settings", "failed") == 3


async def test_templates_are_made_changed_and_deleted(sw: ScreensWorld) -> None:
    w = sw.w
    st = w.api.staff
    async with client(w) as c:
        token = await signed_in(c, "board")
        made = await c.post("/staff/settings/templates", data={
            "csrf": token, "name": "市の台風", "category": "emergency", "priority": "emergency",
            "sender": "", "subject": "台風のため休校", "body": "本日は休校です。"})
        assert made.status_code == 303
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        form = await c.get("/staff/settings/templates/new")
        assert form.status_code == 200 and 'for="name"' in form.text
        base = {"csrf": token, "name": "遠足の延期", "category": "notice",
                "priority": "normal", "sender": "", "subject": "遠足について",
                "body": "雨天のため延期します。"}
        # Bad input: shown again as typed, nothing stored.
        bad = await c.post("/staff/settings/templates", data={**base, "name": " "})
        assert bad.status_code == 422 and "雨天のため延期します" in bad.text
        assert (await c.post("/staff/settings/templates", data={**base, "priority": "x"})
                ).status_code == 422
        r = await c.post("/staff/settings/templates", data=base)
        assert r.status_code == 303
        listed = await c.get("/staff/settings")
        assert "遠足の延期" in listed.text and "市の台風 (教育委員会のテンプレート)" in listed.text
        mine = await st.pool.fetchval(
            "SELECT id FROM saved_messages WHERE name = '遠足の延期'")
        theirs = await st.pool.fetchval("SELECT id FROM saved_messages WHERE name = '市の台風'")
        assert f'/staff/settings/templates/{mine}"' in listed.text
        assert f'/staff/settings/templates/{theirs}"' not in listed.text
        edit = await c.get(f"/staff/settings/templates/{mine}")
        assert "雨天のため延期します" in edit.text
        r = await c.post(f"/staff/settings/templates/{mine}",
                         data={**base, "subject": "遠足は来週です"})
        assert r.status_code == 303
        # The board's template: readable, not the school's to change or delete.
        assert (await c.post(f"/staff/settings/templates/{theirs}", data=base)
                ).status_code == 403
        for step in ({}, {"confirm": "1"}):
            assert (await c.post(f"/staff/settings/templates/{theirs}/delete",
                                 data={"csrf": token, **step})).status_code == 403
        rows = {r["name"]: (r["subject"], r["category"], r["priority"])
                for r in await st.pool.fetch(
                    "SELECT name, subject, category, priority FROM saved_messages")}
        assert rows["遠足の延期"] == ("遠足は来週です", "notice", 1)
        assert rows["市の台風"] == ("台風のため休校", "emergency", 0)
        # Deleting asks first (nothing deleted yet), then deletes.
        ask = await c.post(f"/staff/settings/templates/{mine}/delete", data={"csrf": token})
        assert ask.status_code == 200 and "本当に削除しますか" in ask.text
        assert "遠足の延期" in ask.text and 'name="confirm" value="1"' in ask.text
        assert "遠足の延期" in (await c.get("/staff/settings")).text
        r = await c.post(f"/staff/settings/templates/{mine}/delete",
                         data={"csrf": token, "confirm": "1"})
        assert r.status_code == 303
        assert "遠足の延期" not in (await c.get("/staff/settings")).text
    assert await _audit(sw, "template.create") == 2
    assert await _audit(sw, "template.update") == 1
    assert await _audit(sw, "template.update", "denied") == 1
    assert await _audit(sw, "template.delete") == 1
    assert await _audit(sw, "template.delete", "denied") == 1


async def test_the_board_adds_and_removes_senders_a_school_reads_its_own(
    sw: ScreensWorld,
) -> None:
    w = sw.w
    pool = w.api.staff.pool
    sho2, city = w.orgs["sho2"], w.orgs["city"]
    async with client(w) as c:
        await signed_in(c, "board")
        page = await c.get("/staff/settings", params={"school_id": sho2})
        assert page.status_code == 200
        assert "kyouiku@city.example.jp" in page.text and "sho2@example.jp" in page.text
        token = csrf_of(page.text)
        add = {"csrf": token, "organisation_id": str(sho2), "school_id": str(sho2),
               "address": "info@Sho2.Example.jp", "name": "第二小学校"}
        r = await c.post("/staff/settings/senders/add", data=add)
        assert r.status_code == 303
        assert "info@sho2.example.jp" in [s.address for s in await list_senders(pool, sho2)]
        shown = await c.get(r.headers["location"])
        assert "第二小学校 &lt;info@sho2.example.jp&gt;" in shown.text
        assert "差出人アドレスを登録しました" in shown.text
        bad = await c.post("/staff/settings/senders/add", data={**add, "address": "not-mail"})
        assert bad.status_code == 422
        remove = {"csrf": token, "organisation_id": str(sho2), "school_id": str(sho2),
                  "address": "info@sho2.example.jp"}
        ask = await c.post("/staff/settings/senders/remove", data=remove)
        assert ask.status_code == 200 and "本当に削除しますか" in ask.text
        assert "info@sho2.example.jp" in [s.address for s in await list_senders(pool, sho2)]
        gone = await c.post("/staff/settings/senders/remove", data={**remove, "confirm": "1"})
        assert gone.status_code == 303
        assert "info@sho2.example.jp" not in [s.address for s in await list_senders(pool, sho2)]
        again = await c.post("/staff/settings/senders/remove", data={**remove, "confirm": "1"})
        assert again.status_code == 422 and "ありません" in again.text
        # The board's own addresses, the same way.
        r = await c.post("/staff/settings/senders/add", data={
            **add, "organisation_id": str(city), "address": "bousai@city.example.jp"})
        assert r.status_code == 303
        assert "bousai@city.example.jp" in [s.address for s in await list_senders(pool, city)]
    async with client(w) as c:
        await signed_in(c, "admin1")
        page = await c.get("/staff/settings")
        assert "school@sho1.example.jp" in page.text
        assert "kyouiku@city.example.jp" not in page.text and "sho2@example.jp" not in page.text
        assert "/staff/settings/senders/add" not in page.text
        assert "教育委員会に依頼してください" in page.text
    assert await _audit(sw, "sender.add") == 2
    assert await _audit(sw, "sender.remove") == 1
    assert await _audit(sw, "sender.remove", "failed") == 1
