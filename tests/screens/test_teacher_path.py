"""A teacher's path through the staff screens in Debian's chromium, against the real server,
PostgreSQL and an SMTP sink: sign in, compose to their class, confirm, watch the progress
reach 100 %, download the CSV, sign out. Every screen is photographed at 1366x768 and
390x844 (tests/artifacts/screens/) and checked with axe-core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from staff.conftest import PASSWORD

from screens.conftest import ScreensWorld, check_screen

pytestmark = pytest.mark.slow


async def sign_in(page: Any, url: str, login: str) -> None:
    await page.goto(f"{url}/staff")
    await page.get_by_label("ログイン ID").fill(login)
    await page.get_by_label("パスワード").fill(PASSWORD)
    await page.get_by_role("button", name="ログイン").click()
    await page.wait_for_url("**/staff/home")


async def test_teacher_signs_in_sends_to_their_class_and_follows_it(
    sw: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    context = await browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ja-JP", accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()

    # /staff without a session: the sign-in screen.
    await page.goto(f"{sw.url}/staff")
    assert page.url.endswith("/staff/login")
    await check_screen(page, "01-login", artifacts)

    await sign_in(page, sw.url, "teacher31")
    assert "今回が初めてのログインです" in await page.inner_text("main")
    await check_screen(page, "02-dashboard-empty", artifacts)

    # Compose: only the teacher's own class and group are offered.
    await page.get_by_role("link", name="新しい配信", exact=True).click()
    await page.wait_for_url("**/staff/compose")
    boxes = await page.locator("input[name=to]").evaluate_all("els => els.map(e => e.value)")
    assert boxes == [f"class:{sw.w.classes['sho1-3-1']}", f"group:{sw.w.groups['sho1見守り']}"]
    await page.get_by_label("第一小学校 3年1組").check()
    await page.get_by_label("区分").select_option(label="学校行事")
    await page.get_by_label("件名").fill("遠足の持ち物")
    await page.get_by_label("本文").fill("明日の遠足には水筒と雨具を持たせてください。\n担任")
    await check_screen(page, "03-compose", artifacts)
    await page.get_by_role("button", name="確認へ進む (まだ送信しません)").click()

    # The confirmation names the school, the count and the category; nothing is stored yet.
    await page.wait_for_url("**/staff/compose/confirm")
    assert await page.inner_text(".summary .schools") == "第一小学校"
    assert await page.inner_text(".summary .count") == "2 件"
    assert await page.inner_text(".summary .category") == "学校行事"
    assert await sw.w.count("SELECT count(*) FROM broadcasts") == 0
    await check_screen(page, "04-confirm", artifacts)
    await page.get_by_role("button", name="2 件に送信する").click()
    await page.wait_for_url("**/staff/broadcasts/*")
    broadcast_id = int(page.url.rsplit("/", 1)[1])
    assert await sw.w.count(
        "SELECT count(*) FROM broadcast_owners WHERE broadcast_id = $1 AND staff_id = $2",
        broadcast_id, sw.w.staff["teacher31"],
    ) == 1
    assert await page.inner_text("[data-field=percent]") == "0"

    # A runner delivers to the sink; the page's counts follow without a reload.
    async with sw.runner():
        await expect(page.locator("[data-field=percent]")).to_have_text("100", timeout=30_000)
    assert await page.inner_text("[data-field=delivered]") == "2"
    assert await page.inner_text("[data-field=failed]") == "0"
    assert sorted(r.rcpt for r in sw.sink.handler.received) == [
        "hanako@ezweb.ne.jp", "taro@docomo.ne.jp"
    ]
    await page.reload()
    table = await page.inner_text("table.recipients")
    assert "taro@docomo.ne.jp" in table and "山田太郎" in table and "配信済み" in table
    await check_screen(page, "05-broadcast", artifacts)

    # The CSV: the API's, UTF-8 with a BOM, one row per recipient.
    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV をダウンロード").click()
    download = await info.value
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("宛先,アカウント,状態") and len(lines) == 3
    assert all("配信済み" in line for line in lines[1:])

    # The "failed" filter: nobody failed.
    await page.get_by_role("link", name="失敗・再送待ちのみ表示").click()
    await page.wait_for_url("**failed=true")
    assert "該当する宛先はありません" in await page.inner_text("table.recipients")

    # The dashboard shows it finished.
    await page.get_by_role("link", name="ダッシュボード").click()
    await page.wait_for_url("**/staff/home")
    assert "遠足の持ち物" in await page.inner_text("main")
    assert await page.inner_text("[data-field=percent]") == "100"
    await check_screen(page, "06-dashboard", artifacts)

    await page.get_by_role("link", name="パスワード変更").click()
    await page.wait_for_url("**/staff/password")
    await check_screen(page, "07-password", artifacts)

    # Another class's broadcast (the school's administrator sent it) is not there by URL.
    async with sw.w.client(await sw.w.login("admin1")) as api:
        made = await api.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "3年2組の連絡", "body": "本文",
            "audience": {"classes": [sw.w.classes["sho1-3-2"]]},
        })
    assert made.status_code == 201, made.text
    other = made.json()["broadcast_id"]
    answer = await page.goto(f"{sw.url}/staff/broadcasts/{other}")
    assert answer is not None and answer.status == 404
    text = await page.inner_text("main")
    assert "見つかりません" in text and "3年2組の連絡" not in text
    await check_screen(page, "08-not-found", artifacts)

    # Sign out: back at the sign-in screen, and the dashboard needs a new sign-in.
    await page.get_by_role("button", name="ログアウト").click()
    await page.wait_for_url("**/staff/login?out=1")
    assert "ログアウトしました" in await page.inner_text("main")
    await page.goto(f"{sw.url}/staff/home")
    assert "/staff/login" in page.url
    assert await sw.w.count(
        "SELECT count(*) FROM staff_sessions WHERE staff_id = $1 AND revoked_at IS NULL",
        sw.w.staff["teacher31"],
    ) == 0
    await context.close()
