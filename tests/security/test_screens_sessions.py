"""The staff screens' cookie sessions: cookie attributes, CSRF on every form, the idle
timeout, TOTP at sign-in and the compulsory set-up, and the rights by URL (a teacher cannot
open another class's broadcast). Plain HTTP against the real server; the browser walk is
tests/screens."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pyotp
import pytest
from staff.conftest import PASSWORD, World, new_world
from support import make_settings, served

from admin_api.app import create_app
from admin_api.site import open_site
from admin_api.staff import StaffApi, mount_staff
from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.platform.sealing import new_key_text

IDLE = 600.0


async def _serve(db_url: str, public_url: str) -> AsyncIterator[World]:
    settings = make_settings(
        db_url, people={"key": new_key_text()},
        staff={"max_failures": 3, "session_ttl": 3600.0, "lockout_time": 900.0,
               "idle_timeout": IDLE},
        http={"public_url": public_url, "listen": ""},
    )
    clock = FakeClock(datetime.now(UTC))
    engine = await Engine.open(settings, clock)
    api = await StaffApi.open(engine.pool, settings, clock)
    app = create_app(await open_site(settings, api.people, b"screens-security-secret-0123456"))
    mount_staff(app, api)
    try:
        async with served(app) as base_url:
            w = await new_world(settings, clock, api, base_url)
            yield w
    finally:
        await engine.close()


@pytest.fixture
async def sw(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, ""):
        yield w


@pytest.fixture
async def https_world(db_url: str) -> AsyncIterator[World]:
    async for w in _serve(db_url, "https://mail.city.example.jp"):
        yield w


def browser(w: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=w.base_url, timeout=10, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(c: httpx.AsyncClient, login: str, code: str = "") -> httpx.Response:
    form = await c.get("/staff/login")
    return await c.post("/staff/login", data={
        "csrf": csrf_of(form.text), "login": login, "password": PASSWORD, "code": code,
    })


async def signed_in(c: httpx.AsyncClient, login: str) -> str:
    """Sign ``c`` in; the session's CSRF token."""
    r = await sign_in(c, login)
    assert r.status_code == 303 and r.headers["location"] == "/staff/home", r.text
    home = await c.get("/staff/home")
    assert home.status_code == 200
    return csrf_of(home.text)


async def test_staff_leads_to_sign_in_or_the_dashboard(sw: World) -> None:
    async with browser(sw) as c:
        r = await c.get("/staff")
        assert r.status_code == 303 and r.headers["location"] == "/staff/login"
        assert (await c.get("/staff/home")).headers["location"] == "/staff/login"
    async with browser(sw) as c:
        await signed_in(c, "teacher31")
        assert (await c.get("/staff")).headers["location"] == "/staff/home"


async def test_session_cookie_is_httponly_and_strict(sw: World) -> None:
    async with browser(sw) as c:
        r = await sign_in(c, "teacher31")
    cookie = r.headers["set-cookie"].lower()
    assert "mamoru_staff=mss_" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/staff" in cookie
    # Plain HTTP on loopback without an https public_url: a Secure cookie would never return.
    assert "secure" not in cookie


async def test_session_cookie_is_secure_when_the_public_url_is_https(
    https_world: World,
) -> None:
    async with browser(https_world) as c:
        form = await c.get("/staff/login")
        assert "; secure" in form.headers["set-cookie"].lower()
        token = csrf_of(form.text)
        # A browser sends a Secure cookie back only over HTTPS (the proxy in front); here the
        # test sends it itself.
        r = await c.post(
            "/staff/login", data={"csrf": token, "login": "teacher31", "password": PASSWORD},
            headers={"Cookie": f"mamoru_staff_login={token}"},
        )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "mamoru_staff=mss_" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "; secure" in cookie


async def test_forms_without_the_right_csrf_token_are_refused_and_change_nothing(
    sw: World,
) -> None:
    async with browser(sw) as c:
        # The sign-in form: its double-submit cookie and field must agree.
        await c.get("/staff/login")
        r = await c.post("/staff/login", data={
            "csrf": "x" * 43, "login": "teacher31", "password": PASSWORD,
        })
        assert r.status_code == 403 and "操作を受け付けられません" in r.text
        assert "mamoru_staff=" not in r.headers.get("set-cookie", "")
    async with browser(sw) as c:
        token = await signed_in(c, "teacher31")
        form = {"to": f"class:{sw.classes['sho1-3-1']}", "subject": "件名", "body": "本文",
                "category": "notice", "priority": "normal", "sender": ""}
        # The last character changed (to another one: a token ending in "0" stays itself).
        wrong = token[:-1] + ("1" if token.endswith("0") else "0")
        for bad in ({}, {"csrf": ""}, {"csrf": wrong}):
            r = await c.post("/staff/compose/send", data={**form, **bad})
            assert r.status_code == 403, (r.headers, r.text)
            assert "別のサイトから送られた操作" in r.text
            assert r.headers["content-type"].startswith("text/html")
            r = await c.post("/staff/logout", data=bad)
            assert r.status_code == 403
        assert await sw.count("SELECT count(*) FROM broadcasts") == 0
        # Still signed in: the refused logout ended nothing.
        assert (await c.get("/staff/home")).status_code == 200
        ok = await c.post("/staff/compose/send", data={**form, "csrf": token})
        assert ok.status_code == 303 and ok.headers["location"].startswith("/staff/broadcasts/")
        assert await sw.count("SELECT count(*) FROM broadcasts") == 1


async def test_another_sessions_token_is_not_this_sessions(sw: World) -> None:
    async with browser(sw) as c1, browser(sw) as c2:
        token1 = await signed_in(c1, "teacher31")
        token2 = await signed_in(c2, "teacher31")
        assert token1 != token2
        assert (await c2.post("/staff/logout", data={"csrf": token1})).status_code == 403


async def test_idle_timeout_ends_the_screens_session(sw: World) -> None:
    async with browser(sw) as c:
        await signed_in(c, "teacher31")
        sw.clock.advance(IDLE - 5)
        assert (await c.get("/staff/home")).status_code == 200
        sw.clock.advance(IDLE + 1)
        r = await c.get("/staff/home")
        assert r.status_code == 303 and r.headers["location"] == "/staff/login?ended=1"
        page = await c.get(r.headers["location"])
        assert "ログインが切れました" in page.text


async def test_totp_step_at_sign_in(sw: World) -> None:
    token = await sw.login("teacher31")
    async with sw.client(token) as api:
        secret = (await api.post("/api/staff/totp", json={"current_password": PASSWORD})
                  ).json()["secret"]
        code = pyotp.TOTP(secret).at(sw.clock.now())
        assert (await api.post("/api/staff/totp/confirm", json={"code": code})).status_code == 200
    sw.clock.advance(60)
    async with browser(sw) as c:
        # The password alone: the code is asked next, without the password.
        r = await sign_in(c, "teacher31")
        assert r.status_code == 200 and 'id="code" name="code"' in r.text
        assert "mamoru_staff=" not in r.headers.get("set-cookie", "")
        # Password and code in one form (a password manager): signed in at once.
        r = await sign_in(c, "teacher31", pyotp.TOTP(secret).at(sw.clock.now()))
        assert r.status_code == 303 and r.headers["location"] == "/staff/home"


async def test_compulsory_totp_sends_the_session_to_the_set_up(sw: World) -> None:
    async with sw.client(await sw.login("board")) as api:
        assert (await api.put("/api/staff/policy", json={"totp_required": True})
                ).status_code == 200
    c = browser(sw)
    async with c:
        assert (await sign_in(c, "teacher31")).status_code == 303
        for path in ("/staff/home", "/staff/compose", "/staff/broadcasts/1"):
            r = await c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/staff/totp", path
        page = await c.get("/staff/totp")
        assert "確認コード (2 段階認証) が必要です" in page.text
        begun = await c.post("/staff/totp", data={
            "csrf": csrf_of(page.text), "current_password": PASSWORD,
        })
        assert begun.status_code == 200 and "<svg" in begun.text
        secret = re.search(r"<code>([A-Z2-7 ]+)</code>", begun.text)
        assert secret
        code = pyotp.TOTP(secret.group(1).replace(" ", "")).at(sw.clock.now())
        done = await c.post("/staff/totp/confirm", data={"csrf": csrf_of(begun.text),
                                                         "code": code})
        assert done.status_code == 303 and done.headers["location"] == "/staff/home"
        assert (await c.get("/staff/home")).status_code == 200


async def test_password_change_needs_the_current_password(sw: World) -> None:
    async with browser(sw) as c:
        token = await signed_in(c, "teacher31")
        # The form states the engine's own rule (12 characters), not a looser one.
        form = await c.get("/staff/password")
        assert "12 文字以上" in form.text and 'minlength="12"' in form.text
        new = "a much longer passphrase 42"
        wrong = await c.post("/staff/password", data={
            "csrf": token, "current_password": "wrong", "new_password": new,
            "new_password_again": new,
        })
        assert wrong.status_code == 422 and "現在のパスワード" in wrong.text
        ok = await c.post("/staff/password", data={
            "csrf": token, "current_password": PASSWORD, "new_password": new,
            "new_password_again": new,
        })
        assert ok.status_code == 200 and "パスワードを変更しました" in ok.text
    async with browser(sw) as c2:
        assert (await sign_in(c2, "teacher31")).status_code == 401


async def test_a_teacher_cannot_open_another_class_broadcast_by_url(sw: World) -> None:
    async with sw.client(await sw.login("admin1")) as api:
        r = await api.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "3年2組へ", "body": "本文",
            "audience": {"classes": [sw.classes["sho1-3-2"]]},
        })
        assert r.status_code == 201, r.text
        other = r.json()["broadcast_id"]
    async with browser(sw) as c:
        token = await signed_in(c, "teacher31")
        for path in (f"/staff/broadcasts/{other}", f"/staff/broadcasts/{other}/progress.json",
                     f"/staff/broadcasts/{other}/recipients.csv",
                     f"/staff/broadcasts/{other}?failed=true"):
            r = await c.get(path)
            assert r.status_code == 404, path
            assert "3年2組へ" not in r.text and "jiro@" not in r.text
        r = await c.post(f"/staff/broadcasts/{other}/cancel", data={"csrf": token})
        assert r.status_code == 404
        assert await sw.count(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 AND reason = 'cancelled'",
            other,
        ) == 0
        # Nor can a hand-made form send to that class: refused at the confirmation.
        r = await c.post("/staff/compose/confirm", data={
            "csrf": token, "to": f"class:{sw.classes['sho1-3-2']}", "subject": "x",
            "body": "y", "category": "notice", "priority": "normal", "sender": "",
        })
        assert r.status_code == 403 and "受け持ちでない組" in r.text
        assert "山田" not in r.text
        assert await sw.count("SELECT count(*) FROM broadcasts") == 1
    # The school's administrator sees it.
    async with browser(sw) as c:
        await signed_in(c, "admin1")
        assert (await c.get(f"/staff/broadcasts/{other}")).status_code == 200


async def test_screens_answer_with_their_own_strict_policy(sw: World) -> None:
    async with browser(sw) as c:
        r = await c.get("/staff/login")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
        css = await c.get("/staff/static/screens.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert (await c.get("/staff/static/../app.py")).status_code == 404




async def test_the_progress_polling_does_not_keep_a_screen_signed_in(sw: World) -> None:
    async with sw.client(await sw.login("teacher31")) as api:
        r = await api.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "件名", "body": "本文",
            "audience": {"classes": [sw.classes["sho1-3-1"]]},
        })
        broadcast = r.json()["broadcast_id"]
    async with browser(sw) as c:
        await signed_in(c, "teacher31")
        # A dashboard left open polls on and on; the polls themselves are not activity.
        for _ in range(2):
            sw.clock.advance(IDLE * 0.4)
            p = await c.get(f"/staff/broadcasts/{broadcast}/progress.json")
            assert p.status_code == 200 and p.json()["total"] == 2
        sw.clock.advance(IDLE * 0.4)
        p = await c.get(f"/staff/broadcasts/{broadcast}/progress.json")
        assert p.status_code == 303 and p.headers["location"] == "/staff/login?ended=1"
        assert (await c.get("/staff/home")).headers["location"].startswith("/staff/login")
    # Without JavaScript the pages reload themselves (?auto=1): not activity either.
    async with browser(sw) as c:
        await signed_in(c, "teacher31")
        home = await c.get("/staff/home")
        assert 'http-equiv="refresh" content="15; url=/staff/home?auto=1"' in home.text
        for path in ("/staff/home?auto=1", f"/staff/broadcasts/{broadcast}?auto=1"):
            sw.clock.advance(IDLE * 0.4)
            assert (await c.get(path)).status_code == 200
        sw.clock.advance(IDLE * 0.4)
        assert (await c.get("/staff/home?auto=1")).headers["location"] == "/staff/login?ended=1"


async def test_a_second_click_on_send_does_not_send_twice(sw: World) -> None:
    async with browser(sw) as c:
        await signed_in(c, "teacher31")
        confirm = await c.post("/staff/compose/confirm", data={
            "csrf": csrf_of((await c.get("/staff/compose")).text),
            "to": f"class:{sw.classes['sho1-3-1']}", "subject": "不審者情報",
            "body": "下校時に不審者が目撃されました。", "category": "notice",
            "priority": "emergency", "sender": "",
        })
        assert confirm.status_code == 200, confirm.text
        form = re.search(r'<form method="post" action="/staff/compose/send"[^>]*>(.*?)</form>',
                         confirm.text, re.S)
        assert form is not None
        fields = [(html.unescape(n), html.unescape(v)) for n, v in re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1))]
        assert any(n == "once" and v for n, v in fields)
        data: dict[str, list[str]] = {}
        for name, value in fields:
            data.setdefault(name, []).append(value)
        first = await c.post("/staff/compose/send", data=data)
        again = await c.post("/staff/compose/send", data=data)
        assert first.status_code == again.status_code == 303
        assert first.headers["location"] == again.headers["location"]
    assert await sw.count("SELECT count(*) FROM broadcasts") == 1
