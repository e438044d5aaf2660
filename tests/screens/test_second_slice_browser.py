"""The second slice's screens in Debian's chromium: the dashboard's badge, the reports list,
a survey's totals and the API reference, each photographed at 1366x768 and 390x844
(tests/artifacts/screens/) and checked with axe-core (no serious or critical violation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twoway_staff.conftest import answer, asking_body, create, deliveries

from engine.queue import AttemptResult, Outcome
from engine.twoway import ReportKind
from screens.conftest import ScreensWorld, check_screen
from screens.helpers import always_open, report
from screens.test_teacher_path import sign_in

pytestmark = pytest.mark.slow


async def test_reports_survey_and_reference_screens(
    sw: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    w = sw.w
    await always_open(w, "sho1")
    await report(w, "taro@docomo.ne.jp", note="朝から熱があります")
    await report(w, "hanako@ezweb.ne.jp", ReportKind.LATE)
    broadcast = await create(w, "teacher31", asking_body({"classes": [w.classes["sho1-3-1"]]}, w))
    now = w.api.staff.now()
    claimed = await w.api.queue.claim("test-runner", 100, now, 60)
    await w.api.queue.record("test-runner", [
        AttemptResult(c.id, Outcome.DELIVERED, now, 250) for c in claimed])
    to = await deliveries(w, broadcast)
    await answer(w, to["taro@docomo.ne.jp"], {"attend": "0", "people": "2"})

    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await sign_in(page, sw.url, "teacher31")
    assert await page.inner_text("#new-reports") == "新着 2 件"
    await check_screen(page, "11-dashboard-badge", artifacts)

    # Keyboard only: the menu's link to the reports, then the list.
    await page.get_by_role("link", name="欠席・健康連絡").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/staff/reports")
    table = await page.inner_text("table.reports")
    assert "山田太郎" in table and "遅刻" in table
    await check_screen(page, "12-reports", artifacts)
    await page.get_by_role("button", name="新着をすべて確認済みにする").click()
    await page.wait_for_url("**/staff/reports?**")
    assert await page.locator("table.reports .badge").count() == 0

    await page.goto(f"{sw.url}/staff/broadcasts/{broadcast}/survey")
    assert "回答した人: 1 人" in await page.inner_text("main")
    await check_screen(page, "13-survey", artifacts)

    # The teacher's class list: 3年1組 only, the unregistered a click away.
    await page.get_by_role("link", name="受け持ちの組", exact=True).click()
    await page.wait_for_url("**/staff/roster/class")
    table = await page.inner_text("table.class-list")
    assert "山田太郎" in table and "ta…@docomo.ne.jp" in table and "佐藤次郎" not in table
    await check_screen(page, "16-my-class", artifacts)

    await page.goto(f"{sw.url}/docs")
    assert "/api/staff/organisation" in await page.inner_text("main")
    await check_screen(page, "14-api-reference", artifacts)

    answer_ = await page.goto(f"{sw.url}/staff/no-such-screen")
    assert answer_ is not None and answer_.status == 404
    await check_screen(page, "15-staff-not-found", artifacts)
    await context.close()
