"""The people (名簿) screens in Debian's chromium: a school administrator imports a CP932 roster
with a dry run (nothing stored until confirmed), confirms it, sees the registration rate and
downloads the notices of the unregistered (a PDF); the board's schools list. Each screen is
photographed at 1366x768 and 390x844 (tests/artifacts/screens/) and checked with axe-core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from screens.conftest import ScreensWorld, check_screen
from screens.test_teacher_path import sign_in

pytestmark = pytest.mark.slow

# The school's 3年1組 as Excel saves it (CP932): the two children already there, one new one,
# and a row whose grade the school does not have (line 5).
ROSTER = (
    "学校,学年,組,番号,氏名,連絡先1\r\n"
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp\r\n"
    "sho1,3,1,2,山田花子,hanako@ezweb.ne.jp\r\n"
    "sho1,3,1,3,木村三郎,kimura@docomo.ne.jp\r\n"
    "sho1,9,1,1,範囲外,outside@example.jp\r\n"
).encode("cp932")


async def test_school_admin_imports_a_cp932_roster_sees_the_rate_and_prints_notices(
    sw: ScreensWorld, browser: Any, artifacts: Path
) -> None:
    w = sw.w
    accounts = "SELECT count(*) FROM accounts WHERE state = 'active'"
    before = await w.count(accounts)
    context = await browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ja-JP", accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await sign_in(page, sw.url, "admin1")
    await page.get_by_role("link", name="名簿", exact=True).click()
    await page.wait_for_url("**/staff/roster")
    await check_screen(page, "21-roster", artifacts)

    # The dry run: counts, the change, the bad line; nothing stored.
    await page.get_by_role("link", name="名簿の取り込み (CSV)").click()
    await page.wait_for_url("**/staff/roster/import")
    await check_screen(page, "22-import", artifacts)
    await page.get_by_label("名簿の CSV ファイル").set_input_files(
        {"name": "meibo.csv", "mimeType": "text/csv", "buffer": ROSTER})
    await page.get_by_role("button", name="確認する (まだ保存しません)").click()
    await page.wait_for_selector("#confirm-import")
    assert await page.inner_text("#count-added") == "1"
    assert await page.inner_text("#count-unchanged") == "2"
    assert await page.inner_text("#count-errors") == "1"
    assert "cp932" in await page.inner_text("main")
    errors = await page.inner_text("table.errors")
    assert "5" in errors and "範囲外" not in await page.inner_text("table.changes")
    assert "木村三郎" in await page.inner_text("table.changes")
    assert await w.count(accounts) == before
    await check_screen(page, "23-import-preview", artifacts)

    # Confirmed: the same file, for real.
    await page.get_by_role("button", name="取り込む").click()
    await page.wait_for_selector("text=取り込みました")
    assert await w.count(accounts) == before + 1
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'accounts.import'") == 2
    await check_screen(page, "24-import-done", artifacts)

    # The rate: 3年1組 has three children, two with a confirmed contact.
    await page.get_by_role("link", name="登録率を見る").click()
    await page.wait_for_url("**/staff/roster/rate")
    rows = [await r.inner_text() for r in await page.locator("table.rate tbody tr").all()]
    class_31 = next(r for r in rows if "3年\t1組" in r)
    assert "\t3\t2\t" in class_31 and "66.7%" in class_31, class_31
    await check_screen(page, "25-rate", artifacts)

    # The accounts of 3年1組, and the new child with its unconfirmed (masked) contact.
    await page.goto(f"{sw.url}/staff/roster/accounts?class_id={w.classes['sho1-3-1']}")
    assert "未登録" in await page.inner_text("table")
    await check_screen(page, "26-accounts", artifacts)
    await page.get_by_role("link", name="木村三郎").click()
    assert "ki…@docomo.ne.jp" in await page.inner_text("main")
    assert "kimura@docomo.ne.jp" not in await page.content()
    await check_screen(page, "27-account", artifacts)

    # The notices of the class's unregistered children: a PDF.
    await page.goto(f"{sw.url}/staff/roster/notices")
    await page.get_by_label("組").select_option(str(w.classes["sho1-3-1"]))
    await page.get_by_label("登録用のアドレス (QR コードにします)").fill("entry@sho1.example.jp")
    await check_screen(page, "28-notices", artifacts)
    async with page.expect_download() as got:
        await page.get_by_role("button", name="PDF をダウンロード").click()
    download = await got.value
    pdf = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert pdf.startswith(b"%PDF")
    assert download.suggested_filename.endswith(".pdf")

    await page.goto(f"{sw.url}/staff/roster/invitations")
    assert await page.inner_text("#invite-count") == "1"
    await check_screen(page, "29-invitations", artifacts)

    # 学年と組: a class added through the form; a duplicate comes back with its error.
    await page.goto(f"{sw.url}/staff/roster")
    await page.get_by_role("link", name="学年と組").click()
    await page.wait_for_url("**/staff/roster/classes")
    await page.get_by_label("学年", exact=True).fill("3")
    await page.get_by_label("組 (例: 1、2、さくら)").fill("1")
    await page.get_by_role("button", name="追加する").click()
    alert = page.get_by_role("alert")
    assert "3年1組は既にあります" in await alert.inner_text()
    assert await page.get_by_label("組 (例: 1、2、さくら)").input_value() == "1"
    await check_screen(page, "31-classes-refused", artifacts)
    await context.close()

    board = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    board.set_default_timeout(15_000)
    page = await board.new_page()
    await sign_in(page, sw.url, "board")
    await page.goto(f"{sw.url}/staff/roster/schools")
    assert "第二小学校" in await page.inner_text("table")
    await check_screen(page, "30-schools", artifacts)
    await board.close()
