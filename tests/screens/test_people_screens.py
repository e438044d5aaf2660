"""The people (名簿) screens over HTTP, as a browser without JavaScript uses them: one account's
changes (move, addresses, transfer out after its confirmation step, transfer in), the import's
kept upload (bound to its staff member, used once), schools (add, rename, close), the
invitations' confirmation and the search by name."""

from __future__ import annotations

import html

import pytest

from admin_api.screens import people as people_screens
from screens.conftest import ScreensWorld
from screens.helpers import client, csrf_of, signed_in


async def _id(sw: ScreensWorld, name_part: str, html: str) -> int:
    marker = f'">{name_part}</a>'
    before = html.split(marker)[0]
    return int(before.rsplit("/staff/roster/accounts/", 1)[1])


async def test_one_accounts_changes(sw: ScreensWorld) -> None:
    w = sw.w
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        found = await c.get("/staff/roster/accounts", params={"name": "花子"})
        assert found.status_code == 200 and "山田花子" in found.text
        assert "山田太郎" not in found.text and "1 件" in found.text
        hanako = await _id(sw, "山田花子", found.text)
        moved = await c.post(f"/staff/roster/accounts/{hanako}/move",
                             data={"csrf": csrf, "grade": "3", "class_name": "2",
                                   "number": "5"})
        assert moved.status_code == 303
        page = await c.get(moved.headers["location"])
        assert "組を移しました" in page.text and "3年2組 5番" in page.text
        # A bad grade changes nothing, in Japanese.
        bad = await c.post(f"/staff/roster/accounts/{hanako}/move",
                           data={"csrf": csrf, "grade": "9", "class_name": "1"})
        assert bad.status_code == 422 and "学年" in bad.text
        # Addresses: add one (unconfirmed), remove it by its id.
        added = await c.post(f"/staff/roster/accounts/{hanako}/contacts",
                             data={"csrf": csrf, "address": "new.mama@docomo.ne.jp"})
        assert added.status_code == 303
        page = await c.get(f"/staff/roster/accounts/{hanako}")
        assert "ne…@docomo.ne.jp" in page.text and "未確認" in page.text
        assert "new.mama@docomo.ne.jp" not in page.text
        contact = await w.count(
            "SELECT max(contact_id) FROM contact_accounts WHERE account_id = $1", hanako)
        removed = await c.post(f"/staff/roster/accounts/{hanako}/contacts/{contact}/remove",
                               data={"csrf": csrf})
        assert removed.status_code == 303
        assert "ne…@docomo.ne.jp" not in (await c.get(f"/staff/roster/accounts/{hanako}")).text
        # Transfer out: a confirmation step first, nothing closed by showing it.
        ask = await c.get(f"/staff/roster/accounts/{hanako}/close")
        assert ask.status_code == 200 and "アカウントを終了する" in ask.text
        assert await w.count("SELECT count(*) FROM accounts WHERE id = $1 AND state = 'active'",
                             hanako) == 1
        gone = await c.post(f"/staff/roster/accounts/{hanako}/close",
                            data={"csrf": csrf, "reason": "transferred"})
        assert gone.status_code == 200 and "終了しました" in gone.text
        assert await w.count("SELECT count(*) FROM accounts WHERE id = $1 AND state = 'closed' "
                             "AND closed_reason = 'transferred'", hanako) == 1
        # Transfer in.
        new = await c.post("/staff/roster/accounts/new", data={
            "csrf": csrf, "school_id": str(w.orgs["sho1"]), "kind": "child", "name": "転入花子",
            "grade": "3", "class_name": "1", "number": "7", "address": "tennyu@example.jp"})
        assert new.status_code == 303
        assert "転入花子" in (await c.get(new.headers["location"])).text
        # Without the form's token nothing happens.
        refused = await c.post(f"/staff/roster/accounts/{hanako}/edit",
                               data={"csrf": "x", "name": "x"})
        assert refused.status_code == 403
    for action in ("accounts.move", "contacts.add", "contacts.remove", "accounts.close",
                   "accounts.add"):
        assert await w.count("SELECT count(*) FROM audit_log WHERE action = $1", action) >= 1


async def test_the_kept_upload_is_its_uploaders_and_used_once(sw: ScreensWorld) -> None:
    w = sw.w
    data = "学校,学年,組,番号,氏名\nsho1,4,1,2,新井四郎\n".encode("utf-16")
    async with client(w) as c, client(w) as other:
        csrf = await signed_in(c, "admin1")
        preview = await c.post("/staff/roster/import", data={"csrf": csrf},
                               files={"file": ("meibo.txt", data, "text/plain")})
        assert preview.status_code == 200 and 'id="count-added">1<' in preview.text
        upload = preview.text.split('name="upload" value="')[1].split('"')[0]
        # Another administrator of the same school cannot use it.
        csrf_b = await signed_in(other, "board")
        theirs = await other.post("/staff/roster/import/confirm",
                                  data={"csrf": csrf_b, "upload": upload})
        assert theirs.status_code == 422 and "もう一度アップロード" in theirs.text
        done = await c.post("/staff/roster/import/confirm", data={"csrf": csrf, "upload": upload})
        assert done.status_code == 200 and "取り込みました" in done.text
        again = await c.post("/staff/roster/import/confirm", data={"csrf": csrf, "upload": upload})
        assert again.status_code == 422
    assert await w.count("SELECT count(*) FROM accounts WHERE number = 2 AND class_id = $1",
                         w.classes["sho1-4-1"]) == 1


async def test_schools_and_invitations(sw: ScreensWorld) -> None:
    w = sw.w
    async with client(w) as c:
        csrf = await signed_in(c, "board")
        added = await c.post("/staff/roster/schools", data={
            "csrf": csrf, "code": "chu1", "name": "第一中学校", "kind": "junior_high"})
        assert added.status_code == 303
        listed = await c.get(added.headers["location"])
        assert "学校を登録しました" in listed.text and "第一中学校" in listed.text
        chu1 = await w.count("SELECT id FROM organisations WHERE code = 'chu1'")
        renamed = await c.post(f"/staff/roster/schools/{chu1}/rename",
                               data={"csrf": csrf, "name": "みどり中学校"})
        assert renamed.status_code == 303
        ask = await c.get(f"/staff/roster/schools/{chu1}/close")
        assert "みどり中学校を閉じる" in ask.text
        closed = await c.post(f"/staff/roster/schools/{chu1}/close", data={"csrf": csrf})
        assert closed.status_code == 303
        assert await w.count("SELECT count(*) FROM organisations WHERE id = $1 "
                             "AND closed_at IS NOT NULL", chu1) == 1
        # Invitations: the count first; without the registration settings a Japanese refusal.
        await w.api.people.pool.execute(
            "UPDATE contacts SET confirmed_at = NULL WHERE id = (SELECT min(id) FROM contacts)")
        page = await c.get("/staff/roster/invitations", params={"school_id": w.orgs["sho1"]})
        assert 'id="invite-count">1<' in page.text
        sent = await c.post("/staff/roster/invitations",
                            data={"csrf": csrf_of(page.text), "school_id": str(w.orgs["sho1"])})
        assert sent.status_code == 422 and "public_url" in sent.text
    assert await w.count("SELECT count(*) FROM broadcasts") == 0


async def test_the_accounts_pager_keeps_the_search(
    sw: ScreensWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One account per page: the two 山田 of the world are two pages; the search travels with
    # the page link, percent-encoded (a search with "&" or "#" would otherwise cut it).
    monkeypatch.setattr(people_screens, "PAGE_SIZE", 1)
    async with client(sw.w) as c:
        await signed_in(c, "admin1")
        first = await c.get("/staff/roster/accounts", params={"name": "山田"})
        assert first.status_code == 200 and "1 / 2 ページ" in first.text
        nxt = html.unescape(first.text.split('rel="next" href="', 1)[1].split('"', 1)[0])
        assert "name=%E5%B1%B1%E7%94%B0" in nxt and nxt.endswith("page=2")
        second = await c.get(nxt)
        names = {n for n in ("山田花子", "山田太郎") if n in first.text or n in second.text}
        assert "2 / 2 ページ" in second.text and names == {"山田花子", "山田太郎"}
