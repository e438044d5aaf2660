"""The administrators' screens over HTTP, as a browser without JavaScript uses them: the audit
log (filters, pages, CSV, the chain's verification), the suppression list (search by address,
remove with a reason, audited with the address masked) and staff and API keys (add, role,
password reset, disable; a key's secret shown once, revoked)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from staff.conftest import PASSWORD

from engine.bounce.suppression import Suppressions
from engine.platform.clock import jst
from engine.staff import audit
from engine.staff.models import CLI_PRINCIPAL
from screens.conftest import ScreensWorld
from screens.helpers import client, csrf_of, signed_in


async def test_audit_log_filters_pages_csv_and_verification(sw: ScreensWorld) -> None:
    w = sw.w
    st = w.api.staff
    # 60 entries by the command line over the last four months, oldest first, then sign-ins.
    for i in reversed(range(60)):
        await audit.record(st.pool, st.audit_key, st.now() - timedelta(days=2 * i), CLI_PRINCIPAL,
                           "test.old" if i >= 45 else "test.recent", f"item {i}")
    async with client(w) as c:
        await signed_in(c, "board")
        page = await c.get("/staff/audit")
        assert page.status_code == 200
        html = page.text
        total = int(re.search(r"(\d+) 件 \(1 / (\d+) ページ\)", html).group(1))  # type: ignore[union-attr]
        assert total >= 61 and "/staff/audit?&amp;page=2" not in html
        assert 'page=2">次へ' in html
        # Three months back and more: the oldest entry (118 days) is on the last page.
        last = -(-total // 50)
        tail = await c.get("/staff/audit", params={"page": last})
        assert "item 59" in tail.text
        # Filters: actor, action, a date range (Japan time).
        mine = await c.get("/staff/audit", params={"actor": "board", "action": "login"})
        assert "login" in mine.text and "item 1" not in mine.text
        day = jst(st.now() - timedelta(days=100)).date()
        ranged = await c.get("/staff/audit", params={
            "since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()})
        assert "item 50" in ranged.text and "item 49" not in ranged.text
        assert 'class="filters">1 件' in ranged.text
        bad = await c.get("/staff/audit", params={"since": "2026-02-01", "until": "2026-01-01"})
        assert bad.status_code == 422 and "期間の終わり" in bad.text
        csv = await c.get("/staff/audit.csv", params={"action": "test.old"})
        assert csv.content.startswith(b"\xef\xbb\xbf")
        assert len(csv.content.decode("utf-8-sig").splitlines()) == 1 + 15
        # The chain: not verified from the screens yet, then verified now.
        assert "まだ画面から確認したことはありません" in html
        token = csrf_of(html)
        refused = await c.post("/staff/audit/verify", data={"csrf": "x"})
        assert refused.status_code == 403
        done = await c.post("/staff/audit/verify", data={"csrf": token})
        assert done.status_code == 303
        again = await c.get("/staff/audit")
        state = re.search(r'id="chain-state">(.*?)</p>', again.text, re.S)
        assert state and "改ざんされていません" in state.group(1) and 'class="ok"' in again.text
    # A school's administrator reads their school's entries only, and cannot verify.
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        page = await c.get("/staff/audit")
        assert page.status_code == 200 and "item 1" not in page.text
        assert "今すぐ確認する" not in page.text
        assert (await c.post("/staff/audit/verify", data={"csrf": token})).status_code == 403
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'audit.verify' AND result = 'denied'"
    ) == 1


async def test_suppression_search_and_remove_with_a_reason(sw: ScreensWorld) -> None:
    w = sw.w
    s = Suppressions(w.api.staff.pool, w.api.people.sealer)
    await s.add("taro@docomo.ne.jp", "userunknown")           # sho1's guardian
    await s.add("saburo@example.jp", "mailboxfull")           # sho2's
    await s.add("nobody@example.com", "userunknown")          # nobody's (the single board's)
    async with client(w) as c:
        await signed_in(c, "admin1")
        page = await c.get("/staff/suppressions")
        assert page.status_code == 200
        assert "taro@docomo.ne.jp" in page.text
        assert "saburo@example.jp" not in page.text and "nobody@example.com" not in page.text
        assert "1 件" in page.text
        # Search by the whole address, any case; another school's is "not on the list".
        found = await c.get("/staff/suppressions", params={"address": "Taro@DOCOMO.ne.jp"})
        assert 'id="found">taro@docomo.ne.jp' in found.text
        other = await c.get("/staff/suppressions", params={"address": "saburo@example.jp"})
        assert "配信停止リストにありません" in other.text
        bad = await c.get("/staff/suppressions", params={"address": "not an address"})
        assert bad.status_code == 200 and 'role="alert"' in bad.text
        token = csrf_of(page.text)
        # Without a reason, another school's, a wrong token: refused, nothing changes.
        no_reason = await c.post("/staff/suppressions/remove", data={
            "csrf": token, "address": "taro@docomo.ne.jp", "reason": " "})
        assert no_reason.status_code == 422
        theirs = await c.post("/staff/suppressions/remove", data={
            "csrf": token, "address": "saburo@example.jp", "reason": "保護者の依頼"})
        assert theirs.status_code == 404
        forged = await c.post("/staff/suppressions/remove", data={
            "csrf": "x", "address": "taro@docomo.ne.jp", "reason": "保護者の依頼"})
        assert forged.status_code == 403
        assert await w.count("SELECT count(*) FROM suppressions") == 3
        done = await c.post("/staff/suppressions/remove", data={
            "csrf": token, "address": "taro@docomo.ne.jp", "reason": "保護者の依頼で再開"})
        assert done.status_code == 303 and done.headers["location"].endswith("removed=1")
    assert await s.lookup(["taro@docomo.ne.jp"]) == {}
    row = await w.api.staff.pool.fetchrow(
        "SELECT object, detail, result FROM audit_log WHERE action = 'suppression.remove' "
        "AND result = 'ok'")
    assert row["object"] == "ta…@docomo.ne.jp" and row["detail"] == "保護者の依頼で再開"
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE object LIKE '%taro@docomo%'") == 0
    # The board (the only one) sees every entry left.
    async with client(w) as c:
        await signed_in(c, "board")
        page = await c.get("/staff/suppressions")
        assert "saburo@example.jp" in page.text and "nobody@example.com" in page.text


async def test_staff_and_keys_add_role_reset_disable(sw: ScreensWorld) -> None:
    w = sw.w
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        page = await c.get("/staff/accounts")
        assert page.status_code == 200
        assert "teacher31" in page.text and "admin2" not in page.text
        # A school's administrator adds a teacher of their school to their class...
        added = await c.post("/staff/accounts/add", data={
            "csrf": token, "login": "teacher32", "name": "新任 先生", "role": "teacher",
            "organisation_id": str(w.orgs["sho1"]), "password": PASSWORD,
            "password_again": PASSWORD, "class_ids": str(w.classes["sho1-3-2"])})
        assert added.status_code == 303, added.text
        # ... but no administrator, no other school, no role change.
        admin = await c.post("/staff/accounts/add", data={
            "csrf": token, "login": "admin9", "name": "x", "role": "school",
            "organisation_id": str(w.orgs["sho1"]), "password": PASSWORD,
            "password_again": PASSWORD})
        assert admin.status_code == 403
        elsewhere = await c.post("/staff/accounts/add", data={
            "csrf": token, "login": "t9", "name": "x", "role": "teacher",
            "organisation_id": str(w.orgs["sho2"]), "password": PASSWORD,
            "password_again": PASSWORD})
        assert elsewhere.status_code == 403
        role = await c.post(f"/staff/accounts/{w.staff['teacher31']}/role",
                            data={"csrf": token, "role": "school"})
        assert role.status_code == 403
        new_id = await w.count("SELECT id FROM staff WHERE login = 'teacher32'")
        assert await w.count("SELECT class_id FROM staff_classes WHERE staff_id = $1",
                             new_id) == w.classes["sho1-3-2"]
        reset = await c.post(f"/staff/accounts/{new_id}/password", data={
            "csrf": token, "password": "another good passphrase",
            "password_again": "another good passphrase"})
        assert reset.status_code == 303
        gone = await c.post(f"/staff/accounts/{new_id}/disable", data={"csrf": token})
        assert gone.status_code == 303
        assert "無効 (" in (await c.get("/staff/accounts")).text
        # Keys are the board's.
        assert (await c.get("/staff/keys")).status_code == 403
    async with client(w) as c:
        token = await signed_in(c, "board")
        role = await c.post(f"/staff/accounts/{w.staff['teacher31']}/role",
                            data={"csrf": token, "role": "school"})
        assert role.status_code == 303
        assert await w.count("SELECT count(*) FROM staff_classes WHERE staff_id = $1",
                             w.staff["teacher31"]) == 0
        made = await c.post("/staff/keys/create", data={
            "csrf": token, "name": "校務システム", "organisation_id": str(w.orgs["sho1"])})
        assert made.status_code == 200
        key = re.search(r'id="new-key">([^<]+)<', made.text)
        assert key and made.headers["cache-control"] == "no-store"
        listed = await c.get("/staff/keys")
        assert key.group(1) not in listed.text and "校務システム" in listed.text
        async with w.client(key.group(1)) as app:
            assert (await app.get("/api/staff/organisation")).status_code == 200
        key_id = await w.count("SELECT id FROM api_keys WHERE name = '校務システム'")
        off = await c.post(f"/staff/keys/{key_id}/disable", data={"csrf": token})
        assert off.status_code == 303
        async with w.client(key.group(1)) as app:
            assert (await app.get("/api/staff/organisation")).status_code == 401
    actions = {r["action"] for r in await w.api.staff.pool.fetch(
        "SELECT action FROM audit_log WHERE result = 'ok'")}
    assert {"staff.add", "staff.role", "staff.reset_password", "staff.disable",
            "api_key.create", "api_key.disable"} <= actions


async def test_a_long_log_is_counted_up_to_a_bound(sw: ScreensWorld, monkeypatch: Any) -> None:
    """Past the bound the page says "N 件以上" and pages through the newest N."""
    from admin_api.screens import audit as audit_screen

    monkeypatch.setattr(audit_screen, "COUNT_UP_TO", 60)
    st = sw.w.api.staff
    for i in range(70):
        await audit.record(st.pool, st.audit_key, st.now(), CLI_PRINCIPAL, "test.many", f"n{i}")
    async with client(sw.w) as c:
        await signed_in(c, "board")
        html = (await c.get("/staff/audit")).text
        assert "60 件以上" in html and "(1 / 2 ページ)" in html and 'page=2">次へ' in html
        second = (await c.get("/staff/audit", params={"page": 2})).text
        assert "(2 / 2 ページ)" in second and "次へ" not in second
        few = (await c.get("/staff/audit", params={"action": "login"})).text
        assert "件以上" not in few
