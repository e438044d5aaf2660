"""The 学年と組 screen, a teacher's class list and the people forms re-rendered with their
error, over HTTP as a browser without JavaScript uses them: a refused form comes back with the
values kept and the Japanese reason next to it (role="alert", 422), nothing changed."""

from __future__ import annotations

import re

from screens.conftest import ScreensWorld
from screens.helpers import client, signed_in


def _alert(html: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="[a-z-]+">([^<]+)</p>', html)
    assert found, html[:2000]
    return found.group(1)


async def test_a_school_admin_manages_grades_and_classes(sw: ScreensWorld) -> None:
    w = sw.w
    classes = "SELECT count(*) FROM classes"
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        hub = await c.get("/staff/roster")
        assert 'href="/staff/roster/classes"' in hub.text
        page = await c.get("/staff/roster/classes")
        assert page.status_code == 200
        row = page.text.split(f'id="class-{w.classes["sho1-3-1"]}"')[1].split("</tr>")[0]
        assert "1組" in row and "2 人" in row and "いるため不可" in row
        before = await w.count(classes)

        added = await c.post("/staff/roster/classes/add", data={
            "csrf": csrf, "school_id": str(w.orgs["sho1"]), "grade": "3", "class_name": "3"})
        assert added.status_code == 303
        shown = await c.get(added.headers["location"])
        assert "組を追加しました" in shown.text and "3組" in shown.text
        assert await w.count(classes) == before + 1
        new = await w.count("SELECT c.id FROM classes c JOIN grades g ON g.id = c.grade_id "
                            "WHERE g.school_id = $1 AND g.grade = 3 AND c.name = '3'",
                            w.orgs["sho1"])

        # Refused: the same page, the values kept, the reason next to the form.
        dup = await c.post("/staff/roster/classes/add", data={
            "csrf": csrf, "school_id": str(w.orgs["sho1"]), "grade": "３", "class_name": "1組"})
        assert dup.status_code == 422
        assert "3年1組は既にあります" in _alert(dup.text)
        assert 'value="1組"' in dup.text and 'value="３"' in dup.text
        bad = await c.post(f"/staff/roster/classes/{new}/rename",
                           data={"csrf": csrf, "name": "2"})
        assert bad.status_code == 422 and "3年2組は既にあります" in _alert(bad.text)
        assert 'aria-invalid="true"' in bad.text
        full = await c.post(f"/staff/roster/classes/{w.classes['sho1-3-1']}/remove",
                            data={"csrf": csrf})
        assert full.status_code == 422
        assert "2 人のアカウントがあるため削除できません" in _alert(full.text)
        assert await w.count(classes) == before + 1

        renamed = await c.post(f"/staff/roster/classes/{new}/rename",
                               data={"csrf": csrf, "name": "ひまわり"})
        assert renamed.status_code == 303
        assert "ひまわり組" in (await c.get(renamed.headers["location"])).text
        removed = await c.post(f"/staff/roster/classes/{new}/remove", data={"csrf": csrf})
        assert removed.status_code == 200 and "3年ひまわり組を削除しました" in removed.text
        assert await w.count(classes) == before
    audit = {(r["action"], r["result"]) for r in await w.api.staff.pool.fetch(
        "SELECT action, result FROM audit_log WHERE action LIKE 'class.%'")}
    assert audit == {("class.add", "ok"), ("class.add", "failed"), ("class.rename", "ok"),
                     ("class.rename", "failed"), ("class.remove", "ok"),
                     ("class.remove", "failed")}


async def test_the_board_reaches_the_classes_from_the_schools_screen(sw: ScreensWorld) -> None:
    w = sw.w
    async with client(w) as c:
        await signed_in(c, "board")
        schools = await c.get("/staff/roster/schools")
        link = f'href="/staff/roster/classes?school_id={w.orgs["sho2"]}"'
        assert link in schools.text
        page = await c.get(f"/staff/roster/classes?school_id={w.orgs['sho2']}")
        assert page.status_code == 200 and "第二小学校" in page.text and "5年" in page.text


async def test_a_teacher_sees_their_class_and_finds_the_unregistered(sw: ScreensWorld) -> None:
    w = sw.w
    await w.api.staff.pool.execute(
        "UPDATE contacts SET confirmed_at = NULL WHERE id IN (SELECT contact_id FROM "
        "contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE a.number = 2 "
        "AND a.class_id = $1)", w.classes["sho1-3-1"])
    async with client(w) as c:
        await signed_in(c, "teacher31")
        home = await c.get("/staff/home")
        assert 'href="/staff/roster/class"' in home.text
        page = await c.get("/staff/roster/class")
        assert page.status_code == 200
        assert "山田太郎" in page.text and "山田花子" in page.text and "2 人" in page.text
        assert "ta…@docomo.ne.jp — 登録済み" in page.text
        assert "ha…@ezweb.ne.jp — 未確認" in page.text
        assert "taro@docomo.ne.jp" not in page.text and "佐藤次郎" not in page.text
        # Read-only: no form that changes the roster, no link to the accounts' pages.
        main = page.text.split('<main id="main">')[1]
        assert "/staff/roster/accounts/" not in main and 'method="post"' not in main
        only = await c.get("/staff/roster/class", params={"unregistered": "1"})
        assert "山田花子" in only.text and "山田太郎" not in only.text and "1 人" in only.text
        other = await c.get("/staff/roster/class",
                            params={"class_id": w.classes["sho1-3-2"]})
        assert other.status_code == 403 and "佐藤次郎" not in other.text
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = 'roster.class' "
                         "AND result = 'ok'") == 2
    async with client(w) as c:
        await signed_in(c, "admin1")
        sent = await c.get("/staff/roster/class", params={
            "class_id": w.classes["sho1-3-1"], "unregistered": "1"})
        assert sent.status_code == 303
        listed = await c.get(sent.headers["location"])
        assert listed.status_code == 200
        assert "山田花子" in listed.text and "山田太郎" not in listed.text


async def test_refused_people_forms_come_back_with_their_values(sw: ScreensWorld) -> None:
    w = sw.w
    account = await w.count("SELECT id FROM accounts WHERE class_id = $1 AND number = 1",
                            w.classes["sho1-3-1"])
    state = "SELECT name_sealed, class_id, number FROM accounts ORDER BY id"
    before = [tuple(r) for r in await w.api.staff.pool.fetch(state)]
    contacts = await w.count("SELECT count(*) FROM contacts")
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        base = f"/staff/roster/accounts/{account}"
        edit = await c.post(f"{base}/edit", data={"csrf": csrf, "name": "山田太一",
                                                  "number": "二"})
        assert edit.status_code == 422 and "数字ではありません" in _alert(edit.text)
        assert 'value="山田太一"' in edit.text and 'id="edit-error"' in edit.text
        taken = await c.post(f"{base}/edit", data={"csrf": csrf, "name": "山田太郎",
                                                   "number": "2"})
        assert taken.status_code == 422 and "番号は既に使われています" in _alert(taken.text)
        move = await c.post(f"{base}/move", data={"csrf": csrf, "grade": "9",
                                                  "class_name": "さくら", "number": "4"})
        assert move.status_code == 422 and "学年は 1〜6" in _alert(move.text)
        assert 'value="さくら"' in move.text and 'id="move-error"' in move.text
        address = await c.post(f"{base}/contacts", data={"csrf": csrf, "address": "not-mail"})
        assert address.status_code == 422 and 'value="not-mail"' in address.text
        assert 'id="address-error"' in address.text
        new = await c.post("/staff/roster/accounts/new", data={
            "csrf": csrf, "school_id": str(w.orgs["sho1"]), "kind": "staff",
            "name": "転入太郎", "grade": "十", "class_name": "1"})
        assert new.status_code == 422 and "学年" in _alert(new.text)
        assert 'value="転入太郎"' in new.text
        assert 'value="staff" checked' in new.text
    async with client(w) as c:
        csrf = await signed_in(c, "board")
        dup = await c.post("/staff/roster/schools", data={
            "csrf": csrf, "code": "sho1", "name": "新しい小学校", "kind": "junior_high",
            "final_grade": "3"})
        assert dup.status_code == 422 and "既に登録されています" in _alert(dup.text)
        assert 'value="新しい小学校"' in dup.text
        assert '<option value="junior_high" selected>' in dup.text
        rename = await c.post(f"/staff/roster/schools/{w.orgs['sho2']}/rename",
                              data={"csrf": csrf, "name": "第一小学校"})
        assert rename.status_code == 422 and "既に使われています" in _alert(rename.text)
        assert 'aria-invalid="true"' in rename.text
    # Nothing changed.
    assert [tuple(r) for r in await w.api.staff.pool.fetch(state)] == before
    assert await w.count("SELECT count(*) FROM contacts") == contacts
    assert await w.count("SELECT count(*) FROM organisations WHERE name IN "
                         "('新しい小学校')") == 0
    assert await w.count("SELECT count(*) FROM organisations WHERE name = '第一小学校'") == 1
