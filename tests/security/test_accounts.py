"""Staff accounts that a stolen session or a stranger cannot take over (issue 21).

Through the real HTTP API (tests/staff/conftest.py's world: max_failures 3, session_ttl 1 h,
idle_timeout 30 min by default). A second source is a client bound to 127.0.0.2 (all of
127.0.0.0/8 reaches the loopback server).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from staff.conftest import PASSWORD, World
from staff.conftest import world as world  # noqa: F401 - the fixture, reused
from support import served

from admin_api.staff import StaffApi, mount_staff
from engine.platform.config import load_settings
from engine.platform.errors import ConfigError, InputError
from engine.staff import backoff, passwords
from engine.staff.password_list import LIST_FILE, common, generate

OTHER_SOURCE = "127.0.0.2"


def from_source(w: World, address: str, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=w.base_url, headers=headers, timeout=10,
        transport=httpx.AsyncHTTPTransport(local_address=address),
    )


async def login_body(c: httpx.AsyncClient, login: str, password: str, **extra: Any
                     ) -> httpx.Response:
    return await c.post("/api/staff/login", json={"login": login, "password": password, **extra})


async def set_up_totp(w: World, token: str) -> pyotp.TOTP:
    async with w.client(token) as c:
        r = await c.post("/api/staff/totp", json={"current_password": PASSWORD})
        assert r.status_code == 200, r.text
        totp = pyotp.TOTP(r.json()["secret"])
        ok = await c.post("/api/staff/totp/confirm", json={"code": totp.at(w.clock.now())})
        assert ok.status_code == 200, ok.text
    w.clock.advance(30)  # the confirming code is used; the next step's code is fresh
    return totp


# --- one's own factors need the current ones ---------------------------------------------


async def test_totp_setup_needs_the_current_password(world: World) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        bare = await c.post("/api/staff/totp", json={})
        wrong = await c.post("/api/staff/totp", json={"current_password": "not my password"})
    assert bare.status_code == 422
    assert wrong.status_code == 422 and "現在のパスワード" in wrong.json()["message"]
    assert await world.count(
        "SELECT count(*) FROM staff WHERE totp_pending IS NOT NULL OR totp_sealed IS NOT NULL"
    ) == 0


async def test_replacing_or_removing_totp_needs_a_current_code(world: World) -> None:
    token = await world.login("admin1")
    totp = await set_up_totp(world, token)
    before = await world.api.staff.pool.fetchval(
        "SELECT totp_sealed FROM staff WHERE login = 'admin1'"
    )
    async with world.client(token) as c:
        # The password alone (what a thief at an open screen might know) is not enough.
        replace_no_code = await c.post("/api/staff/totp", json={"current_password": PASSWORD})
        remove_no_code = await c.post("/api/staff/totp/remove",
                                      json={"current_password": PASSWORD})
        assert replace_no_code.status_code == 422 and remove_no_code.status_code == 422
        assert await world.api.staff.pool.fetchval(
            "SELECT totp_pending IS NULL AND totp_sealed = $1 FROM staff WHERE login = 'admin1'",
            before,
        )
        removed = await c.post("/api/staff/totp/remove", json={
            "current_password": PASSWORD, "totp_code": totp.at(world.clock.now())})
    assert removed.status_code == 200, removed.text
    assert removed.json()["staff"]["totp_enabled"] is False


async def test_own_password_change_needs_the_current_password_and_code(world: World) -> None:
    token = await world.login("admin1")
    other = await world.login("admin1")  # the same person on another device
    totp = await set_up_totp(world, token)
    new = "a completely new passphrase"
    async with world.client(token) as c:
        wrong = await c.post("/api/staff/password", json={
            "current_password": "guessing is futile", "new_password": new})
        no_code = await c.post("/api/staff/password", json={
            "current_password": PASSWORD, "new_password": new})
        assert wrong.status_code == 422 and no_code.status_code == 422
        assert "現在のパスワードまたは確認コード" in no_code.json()["message"]
        weak = await c.post("/api/staff/password", json={
            "current_password": PASSWORD, "totp_code": totp.at(world.clock.now()),
            "new_password": "password1234"})
        assert weak.status_code == 422 and "よく使われて" in weak.json()["message"]
        world.clock.advance(30)
        ok = await c.post("/api/staff/password", json={
            "current_password": PASSWORD, "totp_code": totp.at(world.clock.now()),
            "new_password": new})
        assert ok.status_code == 200, ok.text
        # This session stays; the account's other sessions end.
        assert (await c.get("/api/staff/session")).status_code == 200
    async with world.client(other) as c:
        assert (await c.get("/api/staff/session")).status_code == 401
    async with world.client() as c:
        world.clock.advance(30)
        old = await login_body(c, "admin1", PASSWORD, totp_code=totp.at(world.clock.now()))
        assert old.status_code == 401
        world.clock.advance(30)
        fresh = await login_body(c, "admin1", new, totp_code=totp.at(world.clock.now()))
        assert fresh.status_code == 200


async def test_an_admin_cannot_reset_their_own_password_past_the_current_factors(
    world: World,
) -> None:
    admin = await world.login("admin1")
    await set_up_totp(world, admin)
    board = await world.login("board")
    for token, staff_id, body in (
        (admin, world.staff["admin1"], {"password": "taken over at last", "clear_totp": True}),
        (board, world.staff["board"], {"password": "taken over at last"}),
    ):
        async with world.client(token) as c:
            r = await c.post(f"/api/staff/accounts/{staff_id}/password", json=body)
        assert r.status_code == 403, r.text
        assert "POST /api/staff/password" in r.json()["message"]
    # Nothing changed: TOTP stays on, the old password still signs in, no session ended.
    assert await world.count("SELECT count(*) FROM staff WHERE totp_sealed IS NOT NULL") == 1
    async with world.client(board) as c:
        assert (await c.get("/api/staff/session")).status_code == 200
        # Another account's reset stays possible for those with the right.
        other = await c.post(f"/api/staff/accounts/{world.staff['admin2']}/password",
                             json={"password": "a fresh start for admin2"})
    assert other.status_code == 200
    await world.login("board")
    assert await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'staff.reset_password' "
        "AND result = 'denied'"
    ) == 2


# --- back-off per (login, source) ---------------------------------------------------------


async def test_failures_from_one_source_never_delay_another_source(world: World) -> None:
    async with world.client() as attacker:
        for _ in range(10):
            r = await login_body(attacker, "admin1", "guess after guess")
            assert r.status_code == 401
        held = await login_body(attacker, "admin1", PASSWORD)
        assert held.status_code == 401  # this source waits, even with the right password
    async with from_source(world, OTHER_SOURCE) as owner:
        r = await login_body(owner, "admin1", PASSWORD)
    assert r.status_code == 200, r.text
    rows = await world.api.staff.pool.fetch(
        "SELECT source, blocked_until FROM staff_login_failures WHERE login = 'admin1'"
    )
    assert [(x["source"], x["blocked_until"] is not None) for x in rows] == [("127.0.0.1", True)]
    # The wait doubles per failure but stays within lockout_time (900 s in these tests).
    assert rows[0]["blocked_until"] - world.clock.now() <= timedelta(seconds=900)


async def test_locked_unknown_and_wrong_get_the_same_answer_after_the_same_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = passwords._verify

    def counting(stored: str, password: str) -> bool:
        verified.append(stored)
        return real(stored, password)

    monkeypatch.setattr(passwords, "_verify", counting)
    async with world.client() as c:
        for _ in range(3):
            await login_body(c, "admin2", "wrong wrong wrong")
        answers = {
            "held back (right password)": await login_body(c, "admin2", PASSWORD),
            "unknown": await login_body(c, "nobody.here", PASSWORD),
            "wrong": await login_body(c, "admin1", "wrong wrong wrong"),
            "disabled": None,
        }
        async with world.client(await world.login("board")) as b:
            assert (await b.post(
                f"/api/staff/accounts/{world.staff['teacher31']}/disable"
            )).status_code == 200
        answers["disabled"] = await login_body(c, "teacher31", PASSWORD)
    first = answers["wrong"]
    assert first is not None
    for name, r in answers.items():
        assert r is not None
        assert (r.status_code, r.json(), r.headers.get("www-authenticate")) == (
            401, first.json(), "Bearer"
        ), name
    # Every attempt verified a hash (the dummy one for the unknown login): 3 failures, the
    # held-back, unknown, wrong and disabled ones, and the board's sign-in to disable.
    assert len(verified) == 8
    assert verified.count(passwords._dummy()) == 1

    # No obviously different timing: an unknown login costs about what a wrong password does.
    async def elapsed(login: str, source: str) -> float:
        async with from_source(world, source) as c2:
            start = time.perf_counter()
            await login_body(c2, login, "still not the password")
            return time.perf_counter() - start

    unknown = [await elapsed(f"nobody{i}", f"127.0.1.{i}") for i in range(5)]
    wrong = [await elapsed("admin1", f"127.0.2.{i}") for i in range(5)]
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong), (unknown, wrong)


async def test_the_failure_rows_stay_bounded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backoff, "MAX_PER_SOURCE", 5)
    async with world.client() as c:
        for i in range(8):
            assert (await login_body(c, f"made.up.{i}", "x" * 12)).status_code == 401
            world.clock.advance(1)
    assert await world.count("SELECT count(*) FROM staff_login_failures") == 5
    # The oldest went first.
    assert await world.count(
        "SELECT count(*) FROM staff_login_failures WHERE login IN ('made.up.0', 'made.up.1')"
    ) == 0
    world.clock.advance(25 * 3600)  # past QUIET_TIME: dropped with the next failure
    async with from_source(world, OTHER_SOURCE) as c:
        await login_body(c, "admin1", "x" * 12)
    assert await world.count("SELECT count(*) FROM staff_login_failures") == 1


def test_sources_are_addresses_and_ipv6_networks() -> None:
    assert backoff.source_of("192.0.2.7") == "192.0.2.7"
    assert backoff.source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert backoff.source_of("2001:db8:1:2:aaaa::1") == backoff.source_of("2001:db8:1:2::9")
    assert backoff.source_of("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert backoff.source_of("2001:db8:1:3::9") != backoff.source_of("2001:db8:1:2::9")
    longest = timedelta(minutes=15)
    waits = [backoff.delay_after(n, 5, longest).total_seconds() for n in range(1, 12)]
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]


# --- the password rule ---------------------------------------------------------------------


@pytest.mark.parametrize(("password", "why"), [
    ("elevenchars", "12 文字以上"),
    ("aaaaaaaaaaaa", "同じ文字"),
    ("            ", "同じ文字"),
    ("aaaa aaaa aaaa", "同じ文字"),
    ("ａａａａａａａａａａａａ", "同じ文字"),
    ("Password2024", "よく使われて"),
    ("qwertyuiop@[", "よく使われて"),
    ("123456789012", "よく使われて"),
    ("sakura sakura sakura", "よく使われて"),
    ("ＰＡＳＳＷＯＲＤ１２３４", "よく使われて"),
    ("Tanaka.Sho1.X", "ログイン ID と同じ"),
])
def test_the_password_rule_refuses_in_japanese(password: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        passwords.check_strength(password, "tanaka.sho1.x")
    assert why in str(caught.value)


@pytest.mark.parametrize("password", [
    "twelve chars", "correct horse battery", "あいうえおかきくけこさし", "my school 2026 trip",
])
def test_the_password_rule_takes_long_ordinary_passwords(password: str) -> None:
    passwords.check_strength(password, "tanaka.sho1")


def test_the_shipped_list_is_the_generated_one() -> None:
    shipped = common()
    assert 3000 <= len(shipped) <= 20000
    assert shipped == frozenset(generate()), f"regenerate {LIST_FILE.name}"
    assert all(len(entry) >= 12 for entry in shipped)


async def test_the_rule_applies_to_create_and_reset_by_the_api(world: World) -> None:
    board = await world.login("board")
    async with world.client(board) as c:
        made = await c.post("/api/staff/accounts", json={
            "login": "weak.one", "name": "弱い", "role": "school",
            "organisation_id": world.orgs["sho1"], "password": "iloveyou2025"})
        same = await c.post("/api/staff/accounts", json={
            "login": "tanaka.sho1.x", "name": "田中", "role": "school",
            "organisation_id": world.orgs["sho1"], "password": "Tanaka.Sho1.X"})
        reset = await c.post(f"/api/staff/accounts/{world.staff['admin1']}/password",
                             json={"password": "admin1"})
    assert made.status_code == 422 and "よく使われて" in made.json()["message"]
    assert same.status_code == 422 and "ログイン ID と同じ" in same.json()["message"]
    assert reset.status_code == 422 and "12 文字以上" in reset.json()["message"]
    assert await world.count(
        "SELECT count(*) FROM staff WHERE login IN ('weak.one', 'tanaka.sho1.x')"
    ) == 0
    await world.login("admin1")  # the old password still works: nothing changed


# --- sessions: idle time, the previous sign-in, password age -------------------------------


async def test_a_session_ends_after_the_idle_time_and_each_request_moves_it(
    world: World,
) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        for _ in range(2):  # 2 x 20 min: longer than the idle time, but never idle that long
            world.clock.advance(20 * 60)
            r = await c.get("/api/staff/session")
            assert r.status_code == 200, r.text
            assert r.json()["idle_timeout_seconds"] == 1800
    # (session_ttl is 1 h in these tests: a fresh session shows the idle end alone)
    token = await world.login("admin1")
    async with world.client(token) as c:
        world.clock.advance(30 * 60)
        idle = await c.get("/api/staff/session")
        assert idle.status_code == 401 and "操作のない時間" in idle.json()["message"]
        world.clock.advance(-29 * 60)  # even a clock going back does not reopen it
        assert (await c.get("/api/staff/session")).status_code == 401


async def test_sign_in_shows_the_previous_sign_in_and_where_it_came_from(world: World) -> None:
    async with world.client() as c:
        first = await login_body(c, "admin1", PASSWORD)
    assert first.json()["previous_login_at"] is None
    first_at = world.clock.now()
    world.clock.advance(3600)
    async with from_source(world, OTHER_SOURCE) as c:
        second = await login_body(c, "admin1", PASSWORD)
        assert second.status_code == 200
        body = second.json()
        token = body["token"]
    assert body["previous_login_address"] == "127.0.0.1"
    assert datetime.fromisoformat(body["previous_login_at"]) == first_at
    async with world.client(token) as c:
        me = (await c.get("/api/staff/session")).json()
    assert me["previous_login_address"] == "127.0.0.1"
    assert datetime.fromisoformat(me["previous_login_at"]) == first_at


@pytest.fixture
async def aged(world: World) -> AsyncIterator[World]:
    """The same world served again with ``password_max_age = 90d``."""
    settings = replace(world.settings, staff=replace(
        world.settings.staff, password_max_age=90 * 86400.0))
    api = await StaffApi.open(world.api.staff.pool, settings, world.clock)
    app = FastAPI()
    mount_staff(app, api)
    async with served(app) as base_url:
        yield replace(world, settings=settings, api=api, base_url=base_url)


async def test_an_old_password_signs_in_but_may_only_be_changed(aged: World) -> None:
    token = await aged.login("admin1")
    async with aged.client(token) as c:
        assert (await c.get("/api/staff/broadcasts")).status_code == 200
    aged.clock.advance(91 * 86400)
    async with aged.client() as c:
        r = await login_body(c, "admin1", PASSWORD)
    assert r.status_code == 200 and r.json()["password_change_required"] is True
    token = r.json()["token"]
    async with aged.client(token) as c:
        blocked = await c.get("/api/staff/broadcasts")
        assert blocked.status_code == 403 and "パスワードの変更が必要" in blocked.json()["message"]
        assert (await c.post("/api/staff/totp", json={"current_password": PASSWORD})
                ).status_code == 403
        changed = await c.post("/api/staff/password", json={
            "current_password": PASSWORD, "new_password": "spring term passphrase"})
        assert changed.status_code == 200 and changed.json()["password_change_required"] is False
        assert (await c.get("/api/staff/broadcasts")).status_code == 200


async def test_a_password_set_before_the_rule_must_be_changed(world: World) -> None:
    legacy = await passwords.rehash("tenletters")  # 10 characters passed the old rule
    await world.api.staff.pool.execute(
        "UPDATE staff SET password_hash = $1 WHERE login = 'teacher31'", legacy
    )
    async with world.client() as c:
        r = await login_body(c, "teacher31", "tenletters")
    assert r.status_code == 200 and r.json()["password_change_required"] is True
    async with world.client(r.json()["token"]) as c:
        assert (await c.get("/api/staff/broadcasts")).status_code == 403


def test_idle_timeout_and_password_age_are_checked_in_the_config(tmp_path: Any) -> None:
    f = tmp_path / "m.toml"
    for text, key in (('[staff]\nidle_timeout = "9h"\n', "staff.idle_timeout"),
                      ('[staff]\npassword_max_age = "1h"\n', "staff.password_max_age")):
        f.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(f, environ={})
        assert key in str(caught.value)
    f.write_text('[staff]\nidle_timeout = "15m"\npassword_max_age = "180d"\n', encoding="utf-8")
    s = load_settings(f, environ={}).staff
    assert (s.idle_timeout, s.password_max_age) == (900.0, 180 * 86400.0)
