"""Deleting a template or an allowed sender on the settings screen asks first, without
JavaScript: the first POST shows 「本当に削除しますか」 with what will go (and, for a sender,
the templates, drafts and scheduled broadcasts that name it), changing nothing; the second, with
``confirm=1``, deletes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from security.test_screens_sessions import _serve
from staff.conftest import World

from engine.staff.senders import list_senders
from screens.helpers import client, signed_in

from .test_compose_full import form, when

SENDER = "sho1@example.jp"


@pytest.fixture
async def cw(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, "http://mail.city.example.jp"):
        yield w


async def test_removing_a_sender_says_what_uses_it_then_removes(cw: World) -> None:
    w, pool, sho1 = cw, cw.api.staff.pool, cw.orgs["sho1"]
    async with client(w) as c:
        csrf = await signed_in(c, "teacher31")
        r = await c.post("/staff/compose/send", data=form(
            w, csrf, once="sched-1", send_at=when(w, hours=3)))
        assert r.status_code == 303, r.text
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        for name in ("遠足", "運動会"):
            made = await c.post("/staff/settings/templates", data={
                "csrf": csrf, "name": name, "category": "notice", "priority": "normal",
                "sender": SENDER, "subject": "s", "body": "b"})
            assert made.status_code == 303
    async with client(w) as c:
        csrf = await signed_in(c, "board")
        remove = {"csrf": csrf, "organisation_id": str(sho1), "school_id": str(sho1),
                  "address": SENDER}
        ask = await c.post("/staff/settings/senders/remove", data=remove)
        assert ask.status_code == 200 and "本当に削除しますか" in ask.text
        assert SENDER in ask.text
        assert "予約中の配信が 1 件" in ask.text and "テンプレートが 2 件" in ask.text
        assert "下書き" not in ask.text
        assert SENDER in [s.address for s in await list_senders(pool, sho1)]
        # An address that is not registered: said so at the first step, nothing asked.
        unknown = await c.post("/staff/settings/senders/remove",
                               data={**remove, "address": "nobody@example.jp"})
        assert unknown.status_code == 422 and "ありません" in unknown.text
        done = await c.post("/staff/settings/senders/remove", data={**remove, "confirm": "1"})
        assert done.status_code == 303
        assert SENDER not in [s.address for s in await list_senders(pool, sho1)]
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = 'sender.remove' "
                         "AND result = 'ok'") == 1


async def test_a_template_is_deleted_after_the_question_only(cw: World) -> None:
    w, st = cw, cw.api.staff
    async with client(w) as c:
        csrf = await signed_in(c, "admin1")
        await c.post("/staff/settings/templates", data={
            "csrf": csrf, "name": "台風の休校", "category": "notice", "priority": "normal",
            "sender": "", "subject": "休校のお知らせ", "body": "b"})
        tid = await st.pool.fetchval("SELECT id FROM saved_messages WHERE name = '台風の休校'")
        settings = await c.get("/staff/settings")
        # The list's button asks; it does not delete.
        assert f'action="/staff/settings/templates/{tid}/delete"' in settings.text
        ask = await c.post(f"/staff/settings/templates/{tid}/delete", data={"csrf": csrf})
        assert ask.status_code == 200
        assert "本当に削除しますか" in ask.text and "休校のお知らせ" in ask.text
        assert 'href="/staff/settings#templates">やめる' in ask.text
        assert await w.count("SELECT count(*) FROM saved_messages WHERE id = $1", tid) == 1
        # A confirmation without the form's token is refused like any other form.
        bad = await c.post(f"/staff/settings/templates/{tid}/delete",
                           data={"csrf": "x", "confirm": "1"})
        assert bad.status_code == 403
        assert await w.count("SELECT count(*) FROM saved_messages WHERE id = $1", tid) == 1
        done = await c.post(f"/staff/settings/templates/{tid}/delete",
                            data={"csrf": csrf, "confirm": "1"})
        assert done.status_code == 303
    assert await w.count("SELECT count(*) FROM saved_messages WHERE id = $1", tid) == 0
    assert await w.count("SELECT count(*) FROM audit_log WHERE action = 'template.delete' "
                         "AND result = 'ok'") == 1
