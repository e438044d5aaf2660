"""The whole compose form and the broadcast page's actions over HTTP, as a browser without
JavaScript uses them (cookie session, CSRF token in every form): the live recipient count,
the phone preview, schedule, read confirmation, questions, drafts, templates, copying a past
broadcast, files as links, and resend / remind to the filtered behind a confirmation."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from security.test_screens_sessions import _serve
from staff.conftest import World
from twoway_staff.conftest import deliveries

from engine.platform.clock import JST
from engine.queue import AttemptResult, Outcome
from engine.staff import saved, sessions
from engine.staff.models import Principal
from engine.staff.saved import Content, Kind
from screens.helpers import client, signed_in

SENDER = "sho1@example.jp"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
async def cw(db_url: str) -> AsyncIterator[World]:
    """The staff world served with the screens, with a public URL (two-way needs one)."""
    async for w in _serve(db_url, "http://mail.city.example.jp"):
        yield w


def when(w: World, **delta: float) -> str:
    """A datetime-local value (Japan time) ``delta`` from the world's now."""
    return (w.clock.now() + timedelta(**delta)).astimezone(JST).strftime("%Y-%m-%dT%H:%M")


def form(w: World, csrf: str, **more: object) -> dict[str, object]:
    base: dict[str, object] = {
        "csrf": csrf, "to": [f"class:{w.classes['sho1-3-1']}"], "sender": SENDER,
        "category": "notice", "priority": "normal", "subject": "遠足の持ち物",
        "body": "水筒を持たせてください。",
    }
    base.update(more)
    return base


async def test_count_without_script_keeps_the_form_and_the_script_gets_json(cw: World) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        page = await c.post("/staff/compose/count", data=form(cw, csrf, subject="下書き中の件名"))
        assert page.status_code == 200
        assert '<strong id="count-number">2</strong>' in page.text
        assert 'value="下書き中の件名"' in page.text  # what was typed is kept
        got = await c.post("/staff/compose/count.json", data=form(cw, csrf))
        assert got.json() == {"recipients": 2, "skipped": {}, "schools": ["第一小学校"]}
        nothing = await c.post("/staff/compose/count.json", data=form(cw, csrf, to=[]))
        assert nothing.status_code == 422 and "配信先を選ぶと" in nothing.json()["error"]
        # Without the form's token: refused, as every other form.
        bad = await c.post("/staff/compose/count.json", data=form(cw, "x" * 64))
        assert bad.status_code == 403


async def test_confirm_shows_schedule_read_questions_and_the_phone_preview(cw: World) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        page = await c.post("/staff/compose/confirm", data=form(
            cw, csrf, send_at=when(cw, hours=2), read="1", remind_after_hours="3",
            reminders="2", q1_label="参加しますか", q1_kind="single", q1_options="はい\nいいえ",
            q1_required="1", deadline=when(cw, days=2),
        ))
        assert page.status_code == 200, page.text
        text = page.text
        assert "(日本時間) に送信" in text and "3 時間後から最大 2 回再通知" in text
        assert "参加しますか (ひとつ選ぶ: はい / いいえ・必須)" in text
        # The mail as a guardian reads it: the personal page line before the foot.
        assert ("▼確認しました・回答はこちら\n"
                "http://mail.city.example.jp/m/(一人ずつのリンク)") in text
        assert "配信の設定・停止" in text
        assert await cw.count("SELECT count(*) FROM broadcasts") == 0
        # Everything goes on to the send as hidden fields.
        assert 'name="q1_options" value="はい\nいいえ"' in text
        assert 'name="read" value="1"' in text


@pytest.mark.parametrize(("more", "says"), [
    ({"send_at": "2001-01-01T08:00"}, "過去です"),
    ({"q1_label": "参加しますか", "q1_kind": "single", "q1_options": "はい\nいいえ"},
     "締め切りを指定してください"),
    ({"q1_label": "人数", "q1_kind": "single", "q1_options": "ひとつ"}, "選択肢は 2〜"),
    ({"read": "1", "remind_after_hours": "999"}, "1 分〜14 日"),
    ({"send_at": "あした"}, "の形で入れてください"),
])
async def test_refusals_come_back_on_the_form_as_typed(
    cw: World, more: dict[str, str], says: str
) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        page = await c.post("/staff/compose/confirm", data=form(cw, csrf, **more))
        assert page.status_code == 422
        assert says in page.text and 'id="form-error"' in page.text
        assert 'value="遠足の持ち物"' in page.text
        sent = await c.post("/staff/compose/send", data=form(cw, csrf, once="k1", **more))
        assert sent.status_code == 422 and says in sent.text
    assert await cw.count("SELECT count(*) FROM broadcasts") == 0


async def test_send_scheduled_with_read_confirmation_and_a_question(cw: World) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        r = await c.post("/staff/compose/send", data=form(
            cw, csrf, once="once-1", send_at=when(cw, hours=3), read="1",
            remind_after_hours="2", reminders="1", q1_label="人数", q1_kind="number",
            deadline=when(cw, days=1),
        ))
        assert r.status_code == 303, r.text
        bid = int(r.headers["location"].rsplit("/", 1)[1])
    row = await cw.api.staff.pool.fetchrow(
        "SELECT send_at, personal_page FROM broadcasts WHERE id = $1", bid)
    assert row["personal_page"] is True
    assert abs((row["send_at"] - (cw.clock.now() + timedelta(hours=3))).total_seconds()) < 60
    assert await cw.count(
        "SELECT count(*) FROM read_requests WHERE broadcast_id = $1 AND max_reminders = 1", bid
    ) == 1
    assert await cw.count("SELECT count(*) FROM surveys WHERE broadcast_id = $1", bid) == 1


async def test_draft_saved_opened_and_sent_once(cw: World) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        r = await c.post("/staff/compose/draft", data=form(
            cw, csrf, draft_name="明日の連絡", send_at=when(cw, days=1)))
        assert r.status_code == 200 and "下書き「明日の連絡」を保存しました" in r.text
        draft_id = await cw.api.staff.pool.fetchval(
            "SELECT id FROM saved_messages WHERE kind = 'draft' AND staff_id = $1",
            cw.staff["teacher31"])
        assert draft_id is not None
        page = await c.get(f"/staff/compose/from?draft={draft_id}")
        assert page.status_code == 200
        assert 'value="遠足の持ち物"' in page.text and f'value="{draft_id}"' in page.text
        assert re.search(rf'value="class:{cw.classes["sho1-3-1"]}" checked', page.text)
        assert f'value="{when(cw, days=1)}"' in page.text
        # Sent from the confirmation with its id: the draft goes in the same transaction.
        sent = await c.post("/staff/compose/send", data=form(
            cw, csrf, once="d1", draft_id=str(draft_id), send_at=when(cw, days=1)))
        assert sent.status_code == 303, sent.text
        assert await cw.count("SELECT count(*) FROM saved_messages") == 0
    # Another's draft does not exist for the teacher.
    mine = await saved.create(cw.api.staff, await _principal(cw, "admin1"), Kind.DRAFT,
                              Content("校長の下書き", SENDER, "内緒", "本文"))
    async with client(cw) as c2:
        await signed_in(c2, "teacher31")
        gone = await c2.get(f"/staff/compose/from?draft={mine.id}")
        assert gone.status_code == 404 and "内緒" not in gone.text


async def _principal(w: World, login: str) -> Principal:
    token = await w.login(login)
    s = await sessions.session(w.api.staff, token, "127.0.0.1", True)
    return s.principal


async def test_template_and_copy_from_a_past_broadcast(cw: World) -> None:
    admin = await _principal(cw, "admin1")
    t = await saved.create(cw.api.staff, admin, Kind.TEMPLATE,
                           Content("台風の休校", SENDER, "【休校】台風のため", "本日は休校です。"))
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        page = await c.get("/staff/compose")
        assert f'href="/staff/compose/from?template={t.id}"' in page.text
        started = await c.get(f"/staff/compose/from?template={t.id}")
        assert 'value="【休校】台風のため"' in started.text and "本日は休校です。" in started.text
        assert 'name="draft_id"' not in started.text  # a template is never the draft sent
        sent = await c.post("/staff/compose/send", data=form(cw, csrf, once="c1"))
        bid = int(sent.headers["location"].rsplit("/", 1)[1])
        b_page = await c.get(f"/staff/broadcasts/{bid}")
        assert f'href="/staff/compose/from?copy={bid}"' in b_page.text
        copy = await c.get(f"/staff/compose/from?copy={bid}")
        assert copy.status_code == 200 and 'value="遠足の持ち物"' in copy.text
        assert re.search(rf'value="class:{cw.classes["sho1-3-1"]}" checked', copy.text)
        assert await cw.count("SELECT count(*) FROM broadcasts") == 1  # nothing sent by copying


async def test_files_go_as_links_and_a_refused_file_stores_nothing(cw: World) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        data = form(cw, csrf, once="f1")
        bad = await c.post("/staff/compose/send", data=data,
                           files=[("files", ("tool.exe", b"MZ\x90\x00" * 100,
                                             "application/octet-stream"))])
        assert bad.status_code == 422 and "添付ファイル:" in bad.text
        assert "送信内容の確認" in bad.text  # back on the confirmation, files to choose again
        assert await cw.count("SELECT count(*) FROM broadcasts") == 0
        ok = await c.post("/staff/compose/send", data=form(cw, csrf, once="f2"),
                          files=[("files", ("持ち物.pdf", PDF, "application/pdf"))])
        assert ok.status_code == 303, ok.text
        bid = int(ok.headers["location"].rsplit("/", 1)[1])
    assert await cw.count("SELECT count(*) FROM attachments WHERE broadcast_id = $1", bid) == 1
    detail = await cw.api.staff.pool.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'attachment.upload' AND result = 'ok'")
    assert json.loads(detail)["files"] == 1 and "持ち物" not in detail


async def _failed_and_delivered(w: World, bid: int) -> None:
    """taro delivered, hanako refused (550 unknown user), as a runner records them."""
    q, now = w.api.queue, w.clock.now()
    claimed = await q.claim("test-runner", 100, now, 60)
    await q.record("test-runner", [
        AttemptResult(d.id, Outcome.DELIVERED, now, 250) if d.recipient.startswith("taro")
        else AttemptResult(d.id, Outcome.FAILED, now, 550, "5.1.1", "no such user",
                           category="unknown_user")
        for d in claimed if d.broadcast_id == bid
    ])


async def test_resend_to_failed_and_remind_unread_with_a_confirmation_naming_the_count(
    cw: World,
) -> None:
    async with client(cw) as c:
        csrf = await signed_in(c, "teacher31")
        sent = await c.post("/staff/compose/send", data=form(cw, csrf, once="r1", read="1"))
        bid = int(sent.headers["location"].rsplit("/", 1)[1])
        await _failed_and_delivered(cw, bid)
        page = await c.get(f"/staff/broadcasts/{bid}?failed=true&category=unknown_user"
                           f"&class_id={cw.classes['sho1-3-1']}")
        assert "hanako@ezweb.ne.jp" in page.text and "taro@docomo.ne.jp" not in page.text
        assert "未確認の人に再通知する" in page.text
        # The page's own filter form sends empty values for "all".
        form_sent = await c.get(f"/staff/broadcasts/{bid}?failed=true&category=&class_id=")
        assert form_sent.status_code == 200 and "hanako@ezweb.ne.jp" in form_sent.text
        unread = await c.get(f"/staff/broadcasts/{bid}?unread=true")
        assert "taro@docomo.ne.jp" in unread.text and "hanako@ezweb.ne.jp" not in unread.text

        ask = await c.get(f"/staff/broadcasts/{bid}/resend?failed=true")
        assert ask.status_code == 200 and "1 件に再送する" in ask.text
        assert await cw.count("SELECT count(*) FROM broadcasts") == 1  # asking sends nothing
        done = await c.post(f"/staff/broadcasts/{bid}/resend?failed=true",
                            data={"csrf": csrf})
        assert done.status_code == 303
        again = int(done.headers["location"].rsplit("/", 1)[1])
        assert set(await deliveries(cw, again)) == {"hanako@ezweb.ne.jp"}

        ask = await c.get(f"/staff/broadcasts/{bid}/remind?purpose=read")
        assert "1 件に再通知する" in ask.text
        done = await c.post(f"/staff/broadcasts/{bid}/remind?purpose=read",
                            data={"csrf": csrf})
        assert done.status_code == 303
        reminder = int(done.headers["location"].rsplit("/", 1)[1])
        assert set(await deliveries(cw, reminder)) == {"taro@docomo.ne.jp"}
        # Nothing to remind of: the engine's Japanese refusal, nothing sent.
        n = await cw.count("SELECT count(*) FROM broadcasts")
        none = await c.post(f"/staff/broadcasts/{bid}/remind?purpose=survey",
                            data={"csrf": csrf})
        assert none.status_code == 422 and "質問がありません" in none.text
        assert await cw.count("SELECT count(*) FROM broadcasts") == n
        # Without the token: refused, nothing sent.
        forged = await c.post(f"/staff/broadcasts/{bid}/resend?failed=true",
                              data={"csrf": "x"})
        assert forged.status_code == 403
        assert await cw.count("SELECT count(*) FROM broadcasts") == n


async def test_without_public_url_read_confirmation_is_refused_at_the_confirmation(
    db_url: str,
) -> None:
    """The confirmation step already says why (the engine's words), before anything is sent."""
    async for w in _serve(db_url, ""):
        async with client(w) as c:
            csrf = await signed_in(c, "teacher31")
            page = await c.post("/staff/compose/confirm", data=form(w, csrf, read="1"))
            assert page.status_code == 422
            assert "[http] public_url" in page.text and "受け付けません" in page.text
            assert 'value="遠足の持ち物"' in page.text  # the form comes back as typed
            # Without questions or read confirmation the same form goes on to the confirmation.
            plain = await c.post("/staff/compose/confirm", data=form(w, csrf))
            assert plain.status_code == 200, plain.text
        assert await w.count("SELECT count(*) FROM broadcasts") == 0
