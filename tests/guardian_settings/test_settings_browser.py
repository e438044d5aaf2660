"""The settings page in Debian's chromium at 390×844 (a phone), without JavaScript: the PTA
box from the CSV shows checked and unchecking it sticks; 配信を停止する asks first, with
緊急連絡だけは受け取る chosen; 再開する resumes; the completion mails arrive at the sink.
Screenshots land in tests/artifacts/guardian_settings (git-ignored): look at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from screens.conftest import browser  # noqa: F401  (the fixture, reused: skips without chromium)
from support import wait_until

from .conftest import PAPA, Settings

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "guardian_settings"
PTA1 = "PTA（第一小学校）"


async def test_settings_page_on_a_phone(gs: Settings, browser: Any) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ja-JP", java_script_enabled=False,
    )
    try:
        page = await context.new_page()
        await page.goto(gs.base_url + await gs.link())
        pta = page.get_by_label(PTA1)
        assert await pta.is_checked()
        assert await page.get_by_text("第二小学校").count() == 0
        # Nothing wider than the phone.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        await page.screenshot(path=str(SHOTS / "1-settings.png"), full_page=True)

        await pta.uncheck()
        await page.get_by_role("button", name="変更する").click()
        await page.get_by_text("受け取るグループを変更しました").wait_for()
        assert not await page.get_by_label(PTA1).is_checked()

        await page.get_by_role("button", name="配信を停止する").click()
        warning = "緊急のお知らせ（休校・不審者・災害など）も届かなくなります"
        await page.get_by_text(warning).wait_for()
        keep = page.get_by_label("緊急連絡だけは受け取る（おすすめ）")
        assert await keep.is_checked()
        everything = page.get_by_label("すべてのお知らせを停止する（緊急連絡も届きません）")
        assert not await everything.is_checked()
        await page.screenshot(path=str(SHOTS / "2-confirm.png"), full_page=True)
        await page.get_by_role("button", name="この内容で停止する").click()
        await page.get_by_text("緊急連絡だけを受け取るように変更しました").wait_for()
        await page.screenshot(path=str(SHOTS / "3-emergency-only.png"), full_page=True)
        assert (await gs.contact())["emergency_only"] is True

        await page.get_by_role("button", name="配信を再開する").click()
        await page.get_by_text("配信を再開しました").wait_for()
        assert (await gs.contact())["emergency_only"] is False
        await page.screenshot(path=str(SHOTS / "4-resumed.png"), full_page=True)
    finally:
        await context.close()
    # One completion mail per change: groups, emergencies only, resumed.
    await wait_until(lambda: len(gs.mails(PAPA, "設定変更完了")) == 3, timeout=15)
    bodies = "".join(gs.mails(PAPA, "設定変更完了"))
    assert f"受け取らない: {PTA1}" in bodies and "緊急連絡だけ" in bodies and "再開" in bodies
