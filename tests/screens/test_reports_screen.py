"""The reports screen over HTTP, as a browser without JavaScript uses it: one day's reports of
a class with the new ones marked, the filters, the CSV (BOM, Japan time), "seen", and the
dashboard's badge; a teacher sees only their own class."""

from __future__ import annotations

from datetime import timedelta

from twoway_staff.conftest import report_day

from engine.platform.clock import jst
from engine.twoway import ReportKind
from screens.conftest import ScreensWorld
from screens.helpers import always_open, client, report, signed_in


async def test_reports_list_filters_csv_badge_and_seen(sw: ScreensWorld) -> None:
    w = sw.w
    day = report_day(w)  # the first school day on or after today
    await always_open(w, "sho1")
    await report(w, "taro@docomo.ne.jp", note="朝から熱があります")          # 3-1
    await report(w, "hanako@ezweb.ne.jp", ReportKind.LATE)                     # 3-1
    await report(w, "jiro@softbank.ne.jp")                                     # 3-2
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        home = await c.get("/staff/home")
        assert 'id="new-reports">新着 3 件' in home.text
        page = await c.get("/staff/reports", params={"day": day})
        assert page.status_code == 200
        html = page.text
        assert "3 件" in html and html.count('<span class="badge">新着</span>') == 3 + 1
        assert "山田太郎" in html and "朝から熱があります" in html and "佐藤次郎" in html
        # Filters: a class, a kind.
        one = await c.get("/staff/reports", params={"class_id": w.classes["sho1-3-2"],
                                                  "day": day})
        assert "佐藤次郎" in one.text and "山田太郎" not in one.text
        late = await c.get("/staff/reports", params={"kind": "late", "day": day})
        assert "山田花子" in late.text and "山田太郎" not in late.text
        # Another day has none.
        other = await c.get("/staff/reports", params={"day": (day + timedelta(days=1))})
        assert "この日の連絡はありません" in other.text
        # The CSV: UTF-8 with a BOM, the filtered rows, the time in Japan time.
        csv = await c.get("/staff/reports.csv", params={"kind": "absence", "day": day})
        assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
        lines = csv.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("種別,開始日") and len(lines) == 3
        assert f"{jst(w.api.people.clock.now()):%Y-%m-%d}" in lines[1]
        # Seen: the badge goes, the marks go; the filters are kept.
        seen = await c.post("/staff/reports/seen", data={
            "csrf": token, "back": f"kind=late&day={day}&evil=//x"})
        assert seen.status_code == 303
        assert seen.headers["location"] == f"/staff/reports?kind=late&day={day}"
        assert "新着 " not in (await c.get("/staff/home")).text
        assert '<span class="badge">新着</span>' not in (
            await c.get("/staff/reports", params={"day": day})).text.split("</p>", 3)[-1]
        # Without the form's token nothing is marked.
        assert (await c.post("/staff/reports/seen", data={"csrf": "x"})).status_code == 403
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = 'twoway.reports'") >= 4
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'twoway.reports_csv'") == 1


async def test_a_teacher_sees_their_class_only(sw: ScreensWorld) -> None:
    w = sw.w
    await always_open(w, "sho1")
    await report(w, "taro@docomo.ne.jp")       # 3-1: the teacher's
    await report(w, "jiro@softbank.ne.jp")     # 3-2: not theirs
    async with client(w) as c:
        await signed_in(c, "teacher31")
        assert 'id="new-reports">新着 1 件' in (await c.get("/staff/home")).text
        page = await c.get("/staff/reports", params={"day": report_day(w)})
        assert "山田太郎" in page.text and "佐藤次郎" not in page.text
        # Only their class is offered, with no "every class".
        assert "すべての組" not in page.text and "3年2組" not in page.text
        for url in ("/staff/reports", "/staff/reports.csv"):
            other = await c.get(url, params={"class_id": w.classes["sho1-3-2"]})
            assert other.status_code == 403 and "佐藤次郎" not in other.text
            school = await c.get(url, params={"school_id": w.orgs["sho2"]})
            assert school.status_code == 403
        assert "権限がありません" in other.text or "権限がありません" in school.text


async def test_the_board_picks_a_school(sw: ScreensWorld) -> None:
    w = sw.w
    await always_open(w, "sho1")
    await always_open(w, "sho2")
    await report(w, "saburo@example.jp")       # sho2
    async with client(w) as c:
        await signed_in(c, "board")
        assert 'id="new-reports">新着 1 件' in (await c.get("/staff/home")).text
        first = await c.get("/staff/reports")
        assert "第一小学校" in first.text and "田中三郎" not in first.text
        second = await c.get("/staff/reports", params={"school_id": w.orgs["sho2"],
                                                        "day": report_day(w)})
        assert "田中三郎" in second.text
        # A class of another school than the one asked: refused.
        mixed = await c.get("/staff/reports", params={
            "school_id": w.orgs["sho2"], "class_id": w.classes["sho1-3-1"]})
        assert mixed.status_code == 403
        assert (await c.get("/staff/reports", params={"school_id": 987654})).status_code == 404
