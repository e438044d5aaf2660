"""Signing in through the HTTP API: passwords, lock-out, sessions that expire and end, TOTP."""

from __future__ import annotations

import pyotp

from .conftest import PASSWORD, World


async def test_login_gives_a_session_that_names_the_staff_member(world: World) -> None:
    token = await world.login("Admin1")  # login IDs are compared without case
    async with world.client(token) as c:
        r = await c.get("/api/staff/session")
    assert r.status_code == 200
    body = r.json()
    assert body["staff"]["login"] == "admin1"
    assert body["staff"]["role"] == "school"
    assert body["staff"]["role_label_ja"] == "学校管理者"
    assert body["totp_setup_required"] is False
    # Only a hash of the token is stored.
    stored = await world.count(
        "SELECT count(*) FROM staff_sessions WHERE token_hash::text LIKE '%' || $1 || '%'",
        token[4:20],
    )
    assert stored == 0


async def test_wrong_password_is_refused_in_japanese_and_english(world: World) -> None:
    async with world.client() as c:
        r = await c.post("/api/staff/login", json={"login": "admin1", "password": "wrong pass!"})
        unknown = await c.post("/api/staff/login", json={"login": "nobody", "password": "x" * 12})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert "パスワードが違います" in r.json()["message"] and "wrong" in r.json()["message"]
    # An unknown login gets the same answer: no way to learn which logins exist.
    assert unknown.status_code == 401 and unknown.json() == r.json()


async def test_repeated_failures_hold_back_that_source_even_for_the_right_password(
    world: World,
) -> None:
    async with world.client() as c:
        for _ in range(3):  # max_failures = 3 in these tests
            r = await c.post("/api/staff/login", json={"login": "admin1", "password": "nope" * 3})
            assert r.status_code == 401
        held = await c.post("/api/staff/login", json={"login": "admin1", "password": PASSWORD})
        # Held back: the same answer as a wrong password, nothing says the login exists.
        assert held.status_code == 401 and held.json() == r.json()
        # Another account is not affected.
        assert (await c.post(
            "/api/staff/login", json={"login": "admin2", "password": PASSWORD}
        )).status_code == 200
        # After the wait (30 s after the max_failures-th failure) it works again.
        world.clock.advance(31)
        assert (await c.post(
            "/api/staff/login", json={"login": "admin1", "password": PASSWORD}
        )).status_code == 200
    denied = await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'login' AND result = 'denied' "
        "AND actor_name = 'admin1'"
    )
    assert denied == 4
    held_back = await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'login' AND result = 'denied' "
        "AND actor_name = 'admin1' AND detail LIKE 'source held back%'"
    )
    assert held_back == 1


async def test_a_board_password_reset_ends_the_wait_of_a_held_back_source(world: World) -> None:
    async with world.client() as c:
        for _ in range(3):
            await c.post("/api/staff/login", json={"login": "admin1", "password": "nope" * 3})
    assert await world.count(
        "SELECT count(*) FROM staff_login_failures WHERE login = 'admin1' "
        "AND blocked_until IS NOT NULL"
    ) == 1
    board = await world.login("board")
    async with world.client(board) as c:
        r = await c.post(
            f"/api/staff/accounts/{world.staff['admin1']}/password",
            json={"password": "a brand new password"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["locked_until"] is None
    await world.login("admin1", "a brand new password")


async def test_session_expires_after_its_time(world: World) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        assert (await c.get("/api/staff/session")).status_code == 200
        world.clock.advance(3601)  # session_ttl = 3600 s in these tests
        r = await c.get("/api/staff/session")
    assert r.status_code == 401
    assert "有効期限" in r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"


async def test_logout_ends_the_session(world: World) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        assert (await c.post("/api/staff/logout")).status_code == 204
        assert (await c.get("/api/staff/session")).status_code == 401


async def test_disabling_an_account_ends_its_sessions_and_keeps_its_name(world: World) -> None:
    teacher = await world.login("teacher31")
    board = await world.login("board")
    async with world.client(board) as c:
        r = await c.post(f"/api/staff/accounts/{world.staff['teacher31']}/disable")
        assert r.status_code == 200
        assert r.json()["disabled_at"] is not None
        listed = await c.get("/api/staff/accounts")
    assert "teacher31" in [m["login"] for m in listed.json()]
    async with world.client(teacher) as c:
        assert (await c.get("/api/staff/session")).status_code == 401
    async with world.client() as c:
        again = await c.post(
            "/api/staff/login", json={"login": "teacher31", "password": PASSWORD}
        )
    assert again.status_code == 401


async def test_totp_once_set_up_is_needed_to_sign_in_and_a_code_works_once(
    world: World,
) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        begun = await c.post("/api/staff/totp", json={"current_password": PASSWORD})
        secret = begun.json()["secret"]
        totp = pyotp.TOTP(secret)
        bad = await c.post("/api/staff/totp/confirm", json={"code": "000000"
                           if totp.at(world.clock.now()) != "000000" else "111111"})
        assert bad.status_code == 422
        ok = await c.post("/api/staff/totp/confirm", json={"code": totp.at(world.clock.now())})
        assert ok.status_code == 200 and ok.json()["staff"]["totp_enabled"] is True
    async with world.client() as c:
        login = {"login": "admin1", "password": PASSWORD}
        no_code = await c.post("/api/staff/login", json=login)
        assert no_code.status_code == 401 and "確認コード" in no_code.json()["message"]
        # The code used to confirm cannot be used again; the next step's code works.
        world.clock.advance(30)
        code = totp.at(world.clock.now())
        assert (await c.post(
            "/api/staff/login", json={**login, "totp_code": code}
        )).status_code == 200
        replay = await c.post("/api/staff/login", json={**login, "totp_code": code})
        assert replay.status_code == 401


async def test_compulsory_totp_limits_a_session_to_setting_it_up(world: World) -> None:
    board = await world.login("board")
    async with world.client(board) as c:
        r = await c.put("/api/staff/policy", json={"totp_required": True})
        assert r.status_code == 200
    async with world.client() as c:
        r = await c.post("/api/staff/login", json={"login": "admin1", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["totp_setup_required"] is True
    token = r.json()["token"]
    async with world.client(token) as c:
        blocked = await c.get("/api/staff/broadcasts")
        assert blocked.status_code == 403
        assert "TOTP" in blocked.json()["message"]
        begun = await c.post("/api/staff/totp", json={"current_password": PASSWORD})
        secret = begun.json()["secret"]
        code = pyotp.TOTP(secret).at(world.clock.now())
        assert (await c.post("/api/staff/totp/confirm", json={"code": code})).status_code == 200
        assert (await c.get("/api/staff/broadcasts")).status_code == 200


async def test_only_the_board_makes_totp_compulsory(world: World) -> None:
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        r = await c.put("/api/staff/policy", json={"totp_required": True})
    assert r.status_code == 403
    assert await world.count("SELECT count(*) FROM staff_policy WHERE totp_required") == 0
