"""The third slice's screens in Debian's chromium: a board administrator reads the audit log and
verifies the chain, finds and lifts a suppression, manages staff and issues an API key, each
screen photographed at 1366x768 and 390x844 (tests/artifacts/screens/) and checked with
axe-core; and a teacher composes and sends with the keyboard alone (Tab, Shift+Tab, Space,
Enter: no click) until the broadcast's page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from staff.conftest import PASSWORD

from engine.bounce.suppression import Suppressions
from screens.conftest import ScreensWorld, check_screen
from screens.test_teacher_path import sign_in

pytestmark = pytest.mark.slow


async def test_board_reads_the_audit_log_lifts_a_suppression_and_manages_staff(
    sw: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    w = sw.w
    await Suppressions(w.api.staff.pool, w.api.people.sealer).add(
        "taro@docomo.ne.jp", "userunknown")
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await sign_in(page, sw.url, "board")

    await page.get_by_role("link", name="監査ログ").click()
    await page.wait_for_url("**/staff/audit")
    assert "login" in await page.inner_text("table.audit")
    await page.get_by_role("button", name="今すぐ確認する").click()
    await page.wait_for_url("**/staff/audit")
    assert "改ざんされていません" in await page.inner_text("#chain-state")
    await check_screen(page, "21-audit", artifacts)

    await page.get_by_role("link", name="配信停止リスト").click()
    await page.wait_for_url("**/staff/suppressions")
    await page.get_by_label("宛先で探す").fill("taro@docomo.ne.jp")
    await page.get_by_role("button", name="探す").click()
    assert "利用者不明" in await page.inner_text("#found") or "taro" in await page.inner_text(
        "#found")
    await check_screen(page, "22-suppressions", artifacts)
    await page.locator("#reason-found").fill("保護者から届くようになったと連絡")
    await page.locator("#reason-found ~ button").click()
    await page.wait_for_url("**removed=1")
    assert "配信停止の宛先はありません" in await page.inner_text("table.suppressions")

    await page.get_by_role("link", name="職員の管理").click()
    await page.wait_for_url("**/staff/accounts")
    assert "teacher31" in await page.inner_text("table.staff-list")
    await check_screen(page, "23-staff", artifacts)

    await page.get_by_role("link", name="API キー").click()
    await page.wait_for_url("**/staff/keys")
    await page.get_by_label("名前 (どのアプリケーションのキーか)").fill("校務システム")
    await page.get_by_role("button", name="発行する").click()
    key = await page.inner_text("#new-key")
    assert key.startswith("mk_") or len(key) > 30
    await check_screen(page, "24-api-keys", artifacts)
    await context.close()


async def _tab_to(page: Any, selector: str, back: bool = False, limit: int = 80) -> None:
    """Press Tab (Shift+Tab with ``back``) until the element ``selector`` has the focus."""
    for _ in range(limit):
        if await page.evaluate(
            "s => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
        await page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"{selector} never got the focus by keyboard")


async def test_teacher_composes_and_sends_with_the_keyboard_alone(
    sw: ScreensWorld, browser: Any
) -> None:
    w = sw.w
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await page.goto(f"{sw.url}/staff/login")
    await _tab_to(page, "#login")
    await page.keyboard.type("teacher31")
    await _tab_to(page, "#password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/staff/home")

    # The skip link, then the menu's "新しい配信".
    await _tab_to(page, 'a[href="/staff/compose"]')
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/staff/compose")
    await _tab_to(page, f"#to-class-{w.classes['sho1-3-1']}")
    await page.keyboard.press("Space")
    assert await page.is_checked(f"#to-class-{w.classes['sho1-3-1']}")
    await _tab_to(page, "#subject")
    await page.keyboard.type("キーボードだけで送るお知らせ")
    await _tab_to(page, "#body")
    await page.keyboard.type("明日は短縮授業です。")
    # Back up once and forward again: Shift+Tab works too.
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.id") == "subject"
    await _tab_to(page, "form.compose button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/staff/compose/confirm")
    assert await page.inner_text(".summary .count") == "2 件"
    await _tab_to(page, 'form[action="/staff/compose/send"] button[type=submit]')
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/staff/broadcasts/*")
    assert "キーボードだけで送るお知らせ" in await page.inner_text("h1")
    assert await w.count("SELECT count(*) FROM broadcasts") == 1
    await context.close()
