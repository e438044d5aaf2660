"""The settings screen in Debian's chromium: a board administrator sets a school's report
hours, makes a template and adds a sender, is asked before removing it, adds a health
question; the screens photographed at 1366x768 and 390x844
(tests/artifacts/screens/) and checked with axe-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.staff.senders import list_senders
from screens.conftest import ScreensWorld, check_screen
from screens.test_teacher_path import sign_in

pytestmark = pytest.mark.slow


async def test_board_sets_hours_makes_a_template_and_adds_a_sender(
    sw: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    w = sw.w
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await sign_in(page, sw.url, "board")

    await page.get_by_role("link", name="設定").click()
    await page.wait_for_url("**/staff/settings")
    await page.get_by_label("受付開始 (日本時間)").fill("07:00")
    await page.get_by_label("受付終了 (日本時間)").fill("10:30")
    await page.get_by_role("button", name="受付設定を保存する").click()
    await page.wait_for_url("**done=hours")

    await page.get_by_role("link", name="テンプレートを作る").click()
    await page.wait_for_url("**/templates/new")
    await page.get_by_label("テンプレートの名前").fill("台風による休校")
    await page.get_by_label("件名").fill("本日は休校です")
    await page.get_by_label("本文").fill("台風の接近のため、本日は休校とします。")
    await check_screen(page, "27-template", artifacts)
    await page.get_by_role("button", name="テンプレートを保存する").click()
    await page.wait_for_url("**done=template_new**")

    await page.get_by_label("追加するアドレス (第一小学校)").fill("info@sho1.example.jp")
    await page.get_by_label("表示名 (例: 第一小学校)").fill("市立第一小学校")
    await page.get_by_label("表示名 (例: 第一小学校)").press("Enter")
    await page.wait_for_url("**done=sender_added")
    text = await page.inner_text("main")
    assert "台風による休校" in text and "市立第一小学校 <info@sho1.example.jp>" in text
    assert "info@sho1.example.jp" in [
        s.address for s in await list_senders(w.api.staff.pool, w.orgs["sho1"])]
    await check_screen(page, "26-settings", artifacts)

    # Removing a sender asks first; 「やめる」 keeps it.
    await page.get_by_role(
        "button", name="第一小学校の差出人 info@sho1.example.jp を削除する").click()
    await page.get_by_role("heading", name="本当に削除しますか").wait_for()
    await check_screen(page, "28-delete-confirm", artifacts)
    await page.get_by_role("link", name="やめる").click()
    await page.wait_for_url("**/staff/settings?school_id=*")

    # A health question, with the guardian's form previewed.
    await page.get_by_role("link", name="健康観察の質問").click()
    await page.get_by_role("link", name="質問を追加する").click()
    await page.get_by_label("質問の文").fill("今朝の体温")
    await page.get_by_label("回答の形").select_option("number")
    await page.get_by_label("単位 (例: ℃)").fill("℃")
    await page.get_by_role("button", name="質問を保存する").click()
    await page.wait_for_url("**done=added")
    await check_screen(page, "29-health", artifacts)
    assert "info@sho1.example.jp" in [
        s.address for s in await list_senders(w.api.staff.pool, w.orgs["sho1"])]
    await context.close()
