"""The sign-in's TOTP step on the screens: after the right password the browser holds a
pending sign-in (HttpOnly, 5 minutes, bound to its sign-in cookie and source) and the next form
asks for the 6-digit code alone. Wrong codes count as failures of the back-off (the source is
then held back, even with the right code); a pending sign-in that is too old, in another
browser, altered, or older than a password reset opens nothing."""

from __future__ import annotations

import httpx
import pyotp
from staff.conftest import PASSWORD, World

from engine.staff.passwords import hash_password

from .test_screens_sessions import (
    browser,
    csrf_of,
    sign_in,
    sw,  # noqa: F401  (the fixture, reused)
)

PENDING = "mamoru_staff_pending"


async def _with_totp(w: World, login: str = "teacher31") -> pyotp.TOTP:
    token = await w.login(login)
    async with w.client(token) as api:
        secret = (await api.post("/api/staff/totp", json={"current_password": PASSWORD})
                  ).json()["secret"]
        totp = pyotp.TOTP(secret)
        assert (await api.post("/api/staff/totp/confirm",
                               json={"code": totp.at(w.clock.now())})).status_code == 200
    w.clock.advance(60)  # the next code is a new one
    return totp


async def _password_step(c: httpx.AsyncClient) -> httpx.Response:
    r = await sign_in(c, "teacher31")
    assert r.status_code == 200 and "確認コード (6 桁)" in r.text, r.text[:300]
    assert 'name="password"' not in r.text
    return r


async def _code(c: httpx.AsyncClient, page: httpx.Response, code: str) -> httpx.Response:
    return await c.post("/staff/login/code", data={"csrf": csrf_of(page.text), "code": code})


async def _sessions(w: World) -> int:
    return await w.count(
        "SELECT count(*) FROM staff_sessions x JOIN staff s ON s.id = x.staff_id "
        "WHERE s.login = 'teacher31'")


async def test_the_code_alone_after_the_password(sw: World) -> None:  # noqa: F811
    totp = await _with_totp(sw)
    before = await _sessions(sw)
    async with browser(sw) as c:
        page = await _password_step(c)
        cookie = page.headers["set-cookie"]
        assert f"{PENDING}=" in cookie and "HttpOnly" in cookie and "Max-Age=300" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        assert "mamoru_staff=" not in cookie
        assert await _sessions(sw) == before
        # Reloading the step keeps the form; without a pending sign-in it is the password.
        assert (await c.get("/staff/login/code")).status_code == 200
        r = await _code(c, page, totp.at(sw.clock.now()))
        assert r.status_code == 303 and r.headers["location"] == "/staff/home"
        assert f'{PENDING}=""' in r.headers["set-cookie"]
        assert (await c.get("/staff/home")).status_code == 200
        assert await _sessions(sw) == before + 1
    async with browser(sw) as c2:
        assert (await c2.get("/staff/login/code")).headers["location"] == "/staff/login"
    assert await sw.count(
        "SELECT count(*) FROM audit_log WHERE action = 'login' AND result = 'ok' "
        "AND object = 'teacher31'") >= 1


async def test_wrong_codes_count_and_hold_the_source_back(sw: World) -> None:  # noqa: F811
    totp = await _with_totp(sw)
    before = await _sessions(sw)
    async with browser(sw) as c:
        page = await _password_step(c)
        for _ in range(3):   # [staff] max_failures = 3 in this world
            r = await _code(c, page, "000000" if totp.at(sw.clock.now()) != "000000"
                            else "111111")
            assert r.status_code == 401 and "確認コードが違います" in r.text
            assert 'name="password"' not in r.text
        # Held back now: even the right code is refused, and no session opens.
        r = await _code(c, page, totp.at(sw.clock.now()))
        assert r.status_code == 401 and "確認コードが違います" in r.text
        assert (await c.get("/staff/home")).status_code == 303
    assert await _sessions(sw) == before
    assert await sw.count(
        "SELECT count(*) FROM staff_login_failures WHERE login = 'teacher31' "
        "AND blocked_until IS NOT NULL") == 1
    assert await sw.count(
        "SELECT count(*) FROM audit_log WHERE action = 'login' AND result = 'denied' "
        "AND object = 'teacher31'") == 4


async def test_a_pending_sign_in_expires_and_stays_in_its_browser(sw: World) -> None:  # noqa: F811
    totp = await _with_totp(sw)
    before = await _sessions(sw)
    async with browser(sw) as c:
        page = await _password_step(c)
        pending = c.cookies.get(PENDING)
        assert pending
        # Another browser (its own sign-in cookie) with the stolen pending value: refused.
        async with browser(sw) as other:
            form = await other.get("/staff/login")
            other.cookies.set(PENDING, pending, path="/staff")
            r = await other.post("/staff/login/code", data={
                "csrf": csrf_of(form.text), "code": totp.at(sw.clock.now())})
            assert r.status_code == 401 and "やり直してください" in r.text
        # Altered: refused.
        c.cookies.set(PENDING, pending[:-4] + "AAAA", path="/staff")
        r = await _code(c, page, totp.at(sw.clock.now()))
        assert r.status_code == 401 and "やり直してください" in r.text
        # Too old (five minutes): refused, back to the password.
        c.cookies.set(PENDING, pending, path="/staff")
        sw.clock.advance(301)
        r = await _code(c, page, totp.at(sw.clock.now()))
        assert r.status_code == 401 and 'name="password"' in r.text
    # A password reset between the two steps voids the pending sign-in.
    async with browser(sw) as c:
        page = await _password_step(c)
        await sw.api.staff.pool.execute(
            "UPDATE staff SET password_hash = $1, password_changed_at = $2 "
            "WHERE login = 'teacher31'", await hash_password(PASSWORD), sw.clock.now())
        sw.clock.advance(30)
        r = await _code(c, page, totp.at(sw.clock.now()))
        assert r.status_code == 401 and "やり直してください" in r.text
    assert await _sessions(sw) == before
