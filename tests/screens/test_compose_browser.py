"""The full compose in Debian's chromium against the real server, PostgreSQL and an SMTP sink:
a teacher picks their class (the count follows as they tick), schedules it for now, asks for
read confirmation, confirms with the phone preview, sends, follows it to 100 % and resends to
the one address the sink refused, through the confirmation naming the count. Screenshots at
both sizes (tests/artifacts/screens/) and axe-core on every new screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from sinks import Sink
from staff.conftest import new_world
from support import make_settings, served
from twoway_staff.conftest import account_of

from admin_api.app import create_app
from admin_api.site import open_site
from admin_api.staff import StaffApi, mount_staff
from engine.delivery.context import Engine
from engine.people.contacts import add_contact
from engine.platform.clock import JST, FakeClock
from engine.platform.sealing import new_key_text
from screens.conftest import SECRET, ScreensWorld, check_screen
from screens.test_teacher_path import sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
async def sw2(db_url: str) -> AsyncIterator[ScreensWorld]:
    """tests/screens' world with a public URL (read confirmation needs one)."""
    with Sink() as sink:
        settings = make_settings(
            db_url, people={"key": new_key_text()},
            staff={"max_failures": 3, "session_ttl": 3600.0, "lockout_time": 900.0,
                   "idle_timeout": 600.0},
            http={"public_url": "http://mail.city.example.jp", "listen": ""},
            routing={"transport": {"*": sink.address}},
        )
        engine = await Engine.open(settings)
        api = await StaffApi.open(engine.pool, settings)
        app = create_app(await open_site(settings, api.people, SECRET))
        mount_staff(app, api)
        try:
            async with served(app) as base_url:
                w = await new_world(settings, FakeClock(datetime.now(UTC)), api, base_url)
                yield ScreensWorld(w, engine, sink)
        finally:
            await engine.close()


async def test_compose_schedule_read_preview_send_and_resend_to_the_failed(
    sw2: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    w = sw2.w
    # A third address in the class, which the sink refuses (550): the failed one to resend.
    await add_contact(w.api.people, "reject-father@example.jp",
                      [await account_of(w, "taro@docomo.ne.jp")], confirmed=True)
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await sign_in(page, sw2.url, "teacher31")

    await page.get_by_role("link", name="新しい配信", exact=True).click()
    await page.wait_for_url("**/staff/compose")
    # The count follows the ticks (the script; without it, 「人数を確認」).
    await page.get_by_label("第一小学校 3年1組").check()
    await expect(page.locator("#count-number")).to_have_text("3")
    await page.get_by_label("件名", exact=True).fill("遠足の持ち物")
    await page.get_by_label("本文").fill("水筒と雨具を持たせてください。\n担任")
    now = datetime.now(UTC).astimezone(JST).strftime("%Y-%m-%dT%H:%M")
    await page.get_by_label("送信日時 (日本時間。空欄ならすぐに送信)").fill(now)
    await page.get_by_label("「確認しました」を押してもらう", exact=False).check()
    await check_screen(page, "c22-01-compose-full", artifacts)
    await page.get_by_role("button", name="確認へ進む (まだ送信しません)").click()

    await page.wait_for_url("**/staff/compose/confirm")
    assert await page.inner_text(".summary .count") == "3 件"
    assert "(日本時間) に送信" in await page.inner_text(".summary .when")
    assert "求める" in await page.inner_text(".summary .read")
    phone = page.locator(".phone")
    assert "▼確認しました・回答はこちら" in await phone.inner_text()
    box = await phone.bounding_box()
    assert box is not None and box["width"] == 390
    await check_screen(page, "c22-02-confirm-preview", artifacts)
    await page.get_by_role("button", name="3 件に送信する").click()
    await page.wait_for_url("**/staff/broadcasts/*")
    first = int(page.url.rsplit("/", 1)[1])

    async with sw2.runner():
        await expect(page.locator("[data-field=percent]")).to_have_text("100", timeout=30_000)
        assert await page.inner_text("[data-field=failed]") == "1"
        await page.get_by_label("失敗・再送待ちのみ").check()
        await page.get_by_role("button", name="絞り込む").click()
        await page.wait_for_url("**failed=true**")
        table = await page.inner_text("table.recipients")
        assert "reject-father@example.jp" in table and "taro@docomo.ne.jp" not in table
        await check_screen(page, "c22-03-broadcast-filtered", artifacts)
        await page.get_by_role("link", name="絞り込んだ宛先に再送する").click()
        await page.wait_for_url("**/resend?failed=true")
        assert await page.inner_text(".summary .count") == "1 件"
        await check_screen(page, "c22-04-resend-confirm", artifacts)
        await page.get_by_role("button", name="1 件に再送する").click()
        await page.wait_for_url("**/staff/broadcasts/*")
        again = int(page.url.rsplit("/", 1)[1])
        assert again != first
        await expect(page.locator("[data-field=percent]")).to_have_text("100", timeout=30_000)
    refused = [r.rcpt for r in sw2.sink.handler.received]
    assert "reject-father@example.jp" not in refused  # the sink never accepted it
    assert sorted(refused) == ["hanako@ezweb.ne.jp", "taro@docomo.ne.jp"]
    assert await w.count(
        "SELECT count(*) FROM broadcast_owners WHERE broadcast_id = $1 AND resend_of = $2",
        again, first) == 1
    assert await w.count(
        "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", again) == 1
    await context.close()
