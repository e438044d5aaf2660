"""The role matrix of the administrators' screens (audit log, suppression list, staff, API
keys) over HTTP, with two boards: for the teacher, a school administrator, the board and the
other board's staff, what is outside the rights is neither in the menu nor reachable by URL (a
Japanese 403 or 404 page), and every POST outside them is refused and changes nothing."""

from __future__ import annotations

from screens.helpers import client, csrf_of, signed_in
from staff.conftest import PASSWORD, World

from engine.bounce.suppression import Suppressions
from engine.staff import apikeys

from .test_screens_roles import two_boards  # noqa: F401  (the fixture, reused)

SCREENS = ("/staff/audit", "/staff/suppressions", "/staff/accounts", "/staff/keys")
# Which screens each may open; the rest are a Japanese 403.
ALLOWED = {
    "teacher31": set(), "tteacher": set(),
    "admin1": {"/staff/audit", "/staff/suppressions", "/staff/accounts"},
    "board": set(SCREENS), "tboard": set(SCREENS),
}


async def test_admin_screens_show_and_reach_only_whats_within_the_rights(
    two_boards: World,  # noqa: F811
) -> None:
    w = two_boards
    st = w.api.staff
    sup = Suppressions(st.pool, w.api.people.sealer)
    await sup.add("taro@docomo.ne.jp", "userunknown")         # city, sho1
    await sup.add("saburo@example.jp", "userunknown")         # city, sho2
    await sup.add("ichiro@town.example.jp", "userunknown")    # town
    _, city_key = await apikeys.create(st, w.orgs["city"], "市の校務システム", None)
    _, town_key = await apikeys.create(st, w.orgs["town"], "町の校務システム", None)
    # Something of each board in the audit log.
    for login in ("admin2", "tadmin"):
        async with client(w) as c:
            await signed_in(c, login)

    # What another board's staff (or another school's administrator) must never see.
    hidden = {
        "admin1": ("saburo@example.jp", "admin2", "ichiro@town", "tadmin", "町の校務"),
        "board": ("ichiro@town", "tadmin", "tteacher", "町の校務"),
        "tboard": ("taro@docomo", "saburo@example", "admin1", "admin2", "teacher31",
                   "市の校務"),
    }
    for login, allowed in ALLOWED.items():
        async with client(w) as c:
            await signed_in(c, login)
            home = (await c.get("/staff/home")).text
            for url in SCREENS:
                assert (f'href="{url}"' in home) == (url in allowed), (login, url)
                got = await c.get(url)
                if url in allowed:
                    assert got.status_code == 200, (login, url, got.status_code)
                    for secret in hidden.get(login, ()):
                        assert secret not in got.text, (login, url, secret)
                else:
                    assert got.status_code == 403, (login, url, got.status_code)
                    assert "権限がありません" in got.text and f'href="{url}"' not in got.text
                    for secret in ("taro@docomo", "saburo@example", "ichiro@town", "校務システム"):
                        assert secret not in got.text, (login, url, secret)
            for url in ("/staff/audit.csv", "/staff/suppressions?address=taro@docomo.ne.jp"):
                got = await c.get(url)
                if url.split("?")[0].replace(".csv", "") in allowed:
                    assert got.status_code == 200
                    # The search echoes what was typed; whether it was found is the answer.
                    text = got.text.replace('value="taro@docomo.ne.jp"', "").replace(
                        "taro@docomo.ne.jp は配信停止リストにありません", "")
                    for secret in hidden.get(login, ()):
                        assert secret not in text, (login, url, secret)
                else:
                    assert got.status_code == 403, (login, url)

    # POSTs outside the rights: (login, path, form) -> the refusal; nothing changes.
    s = w.staff
    probes: dict[str, list[tuple[str, dict[str, str], tuple[int, ...]]]] = {
        "teacher31": [
            ("/staff/audit/verify", {}, (403,)),
            ("/staff/suppressions/remove", {"address": "taro@docomo.ne.jp", "reason": "x"},
             (403,)),
            ("/staff/accounts/add", {"login": "t99", "name": "x", "role": "teacher",
                                     "organisation_id": str(w.orgs["sho1"]),
                                     "password": PASSWORD, "password_again": PASSWORD}, (403,)),
            (f"/staff/accounts/{s['admin1']}/disable", {}, (403, 404)),
            (f"/staff/accounts/{s['admin1']}/password",
             {"password": "new pass phrase 1", "password_again": "new pass phrase 1"},
             (403, 404)),
            ("/staff/keys/create", {"name": "x", "organisation_id": str(w.orgs["sho1"])},
             (403,)),
            (f"/staff/keys/{city_key.id}/disable", {}, (403,)),
        ],
        "admin1": [
            ("/staff/audit/verify", {}, (403,)),
            ("/staff/suppressions/remove", {"address": "saburo@example.jp", "reason": "x"},
             (404,)),
            (f"/staff/accounts/{s['admin2']}/disable", {}, (404,)),
            (f"/staff/accounts/{s['board']}/disable", {}, (404,)),
            (f"/staff/accounts/{s['teacher31']}/role", {"role": "school"}, (403,)),
            ("/staff/keys/create", {"name": "x", "organisation_id": str(w.orgs["sho1"])},
             (403,)),
        ],
        "tboard": [
            ("/staff/suppressions/remove", {"address": "taro@docomo.ne.jp", "reason": "x"},
             (404,)),
            (f"/staff/accounts/{s['teacher31']}/disable", {}, (404,)),
            (f"/staff/accounts/{s['admin1']}/password",
             {"password": "new pass phrase 1", "password_again": "new pass phrase 1"}, (404,)),
            (f"/staff/accounts/{s['teacher31']}/role", {"role": "school"}, (404,)),
            (f"/staff/keys/{city_key.id}/disable", {}, (404,)),
            ("/staff/keys/create", {"name": "x", "organisation_id": str(w.orgs["sho1"])},
             (404, 422)),
            ("/staff/accounts/add", {"login": "t98", "name": "x", "role": "teacher",
                                     "organisation_id": str(w.orgs["sho1"]),
                                     "password": PASSWORD, "password_again": PASSWORD},
             (404, 422)),
        ],
        "board": [
            ("/staff/suppressions/remove",
             {"address": "ichiro@town.example.jp", "reason": "x"}, (404,)),
            (f"/staff/accounts/{s['tteacher']}/disable", {}, (404,)),
            (f"/staff/keys/{town_key.id}/disable", {}, (404,)),
        ],
    }
    before = await st.pool.fetch(
        "SELECT id, role, disabled_at, password_hash FROM staff ORDER BY id")
    for login, posts in probes.items():
        async with client(w) as c:
            await signed_in(c, login)
            token = csrf_of((await c.get("/staff/home")).text)
            for path, form, statuses in posts:
                got = await c.post(path, data={"csrf": token, **form})
                assert got.status_code in statuses, (login, path, got.status_code)
                assert "権限がありません" in got.text or "見つかりません" in got.text or (
                    "入力を確認してください" in got.text), (login, path)
    assert await st.pool.fetch(
        "SELECT id, role, disabled_at, password_hash FROM staff ORDER BY id") == before
    assert await w.count("SELECT count(*) FROM suppressions") == 3
    assert await w.count("SELECT count(*) FROM api_keys WHERE disabled_at IS NOT NULL") == 0
    assert await w.count("SELECT count(*) FROM api_keys") == 2
