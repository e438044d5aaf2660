"""The role matrix of the settings screen (report hours, templates, allowed senders) over
HTTP, with two boards: a teacher is refused the screen and every form (403); a school's
administrator changes their own school's hours and templates only, never another school's
nor any sender; the board changes its schools' senders, not another board's. Every refused
POST is a Japanese page, audited as denied or failed, and changes nothing. And the engine's
rule under the screen: a sender's domain needs a DKIM key unless unsigned mail is allowed."""

from __future__ import annotations

from datetime import time

import pytest
from screens.helpers import always_open, client, csrf_of, signed_in
from staff.conftest import World

from engine.message.dkim import DkimSettings
from engine.platform.errors import InputError
from engine.staff.models import ActorKind, Principal, Role
from engine.staff.senders import add_for

from .test_screens_roles import two_boards  # noqa: F401  (the fixture, reused)

# A template of each board and school, to aim at.
_TEMPLATES = ("city", "sho1", "sho2", "town")


async def _state(w: World) -> list[object]:
    pool = w.api.staff.pool
    return [
        await pool.fetch("SELECT * FROM report_settings ORDER BY school_id"),
        await pool.fetch("SELECT * FROM organisation_senders ORDER BY organisation_id, address"),
        await pool.fetch("SELECT id, name, subject FROM saved_messages ORDER BY id"),
    ]


async def test_settings_are_changed_only_within_the_rights(
    two_boards: World,  # noqa: F811
) -> None:
    w = two_boards
    pool = w.api.staff.pool
    for school in ("sho1", "sho2", "tsho"):
        await always_open(w, school)
    tid = {}
    for org in _TEMPLATES:
        tid[org] = await pool.fetchval(
            "INSERT INTO saved_messages (kind, organisation_id, name, subject, body, category, "
            "priority, created_at, updated_at) VALUES ('template', $1, $2, 's', 'b', 'notice', "
            "1, now(), now()) RETURNING id", w.orgs[org], f"{org}の文面")
    sho1, sho2, city, town, tsho = (w.orgs[k] for k in ("sho1", "sho2", "city", "town", "tsho"))
    hours = {"opens": "06:00", "closes": "09:00", "reasons": "発熱"}
    sender = {"address": "new@example.jp", "name": ""}
    tpl = {"name": "x", "category": "notice", "priority": "normal", "subject": "s", "body": "b"}
    # Screens that are not theirs to open: (login, url) -> status.
    pages = {
        "teacher31": [("/staff/settings", 403), ("/staff/settings/templates/new", 403),
                      (f"/staff/settings/templates/{tid['sho1']}", 403)],
        "admin1": [(f"/staff/settings?school_id={sho2}", 403),
                   (f"/staff/settings/templates/{tid['sho2']}", 404),
                   (f"/staff/settings/templates/{tid['town']}", 404)],
        "board": [(f"/staff/settings?school_id={tsho}", 404),
                  (f"/staff/settings/templates/{tid['town']}", 404)],
        "tboard": [(f"/staff/settings?school_id={sho1}", 404),
                   (f"/staff/settings/templates/{tid['city']}", 404)],
    }
    # Forms outside the rights: (login, path, form, statuses).
    posts = {
        "teacher31": [
            ("/staff/settings/hours", {**hours, "school_id": str(sho1)}, (403,)),
            ("/staff/settings/templates", tpl, (403,)),
            (f"/staff/settings/templates/{tid['sho1']}", tpl, (403,)),
            (f"/staff/settings/templates/{tid['sho1']}/delete", {"confirm": "1"}, (403,)),
            ("/staff/settings/senders/add",
             {**sender, "organisation_id": str(sho1), "school_id": str(sho1)}, (403,)),
        ],
        "admin1": [
            ("/staff/settings/hours", {**hours, "school_id": str(sho2)}, (403,)),
            ("/staff/settings/hours", {**hours, "school_id": str(tsho)}, (403,)),
            (f"/staff/settings/templates/{tid['sho2']}", tpl, (404,)),
            (f"/staff/settings/templates/{tid['city']}", tpl, (403,)),
            (f"/staff/settings/templates/{tid['city']}/delete", {"confirm": "1"}, (403,)),
            ("/staff/settings/senders/add",
             {**sender, "organisation_id": str(sho1), "school_id": str(sho1)}, (403,)),
            ("/staff/settings/senders/add",
             {**sender, "organisation_id": str(city), "school_id": str(sho1)}, (403,)),
            ("/staff/settings/senders/remove", {"address": "school@sho1.example.jp",
             "organisation_id": str(sho1), "school_id": str(sho1), "confirm": "1"}, (403,)),
        ],
        "board": [
            ("/staff/settings/hours", {**hours, "school_id": str(tsho)}, (422,)),
            (f"/staff/settings/templates/{tid['town']}/delete", {"confirm": "1"}, (404,)),
            ("/staff/settings/senders/add",
             {**sender, "organisation_id": str(town), "school_id": str(sho1)}, (422,)),
            ("/staff/settings/senders/remove", {"address": "kyouiku@town.example.jp",
             "organisation_id": str(town), "school_id": str(sho1), "confirm": "1"}, (422,)),
        ],
        "tboard": [
            ("/staff/settings/hours", {**hours, "school_id": str(sho1)}, (422,)),
            ("/staff/settings/senders/add",
             {**sender, "organisation_id": str(sho1), "school_id": str(tsho)}, (422,)),
        ],
    }
    before = await _state(w)
    for login in pages.keys() | posts.keys():
        async with client(w) as c:
            await signed_in(c, login)
            home = await c.get("/staff/home")
            token = csrf_of(home.text)
            assert ('href="/staff/settings"' in home.text) == (login != "teacher31"), login
            for url, status in pages.get(login, []):
                got = await c.get(url)
                assert got.status_code == status, (login, url, got.status_code)
                assert "の文面" not in got.text or status == 200, (login, url)
            for path, form, statuses in posts.get(login, []):
                got = await c.post(path, data={"csrf": token, **form})
                assert got.status_code in statuses, (login, path, got.status_code)
                assert any(t in got.text for t in (
                    "権限がありません", "見つかりません", "入力を確認してください")), (login, path)
    assert await _state(w) == before
    # Each refusal of a change is in the audit log (denied or failed), none as done.
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE result IN ('denied', 'failed') AND action IN "
        "('twoway.report_settings', 'template.create', 'template.update', 'template.delete', "
        "'sender.add', 'sender.remove')") == sum(
        len(p) for p in posts.values())
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE result = 'ok' AND action IN "
        "('twoway.report_settings', 'template.create', 'template.update', 'template.delete', "
        "'sender.add', 'sender.remove')") == 0
    # Within the rights the same forms work (the school's own hours).
    async with client(w) as c:
        token = await signed_in(c, "admin1")
        got = await c.post("/staff/settings/hours",
                           data={"csrf": token, **hours, "school_id": str(sho1)})
        assert got.status_code == 303
    s = await pool.fetchrow("SELECT opens FROM report_settings WHERE school_id = $1", sho1)
    assert s is not None and s["opens"] == time(6, 0)


async def test_a_sender_needs_a_dkim_key_unless_unsigned_mail_is_allowed(
    two_boards: World,  # noqa: F811
) -> None:
    w = two_boards
    board = Principal(ActorKind.STAFF, w.staff["board"], "board", Role.BOARD, w.orgs["city"],
                      w.orgs["city"])
    with pytest.raises(InputError, match="DKIM"):
        await add_for(w.api.staff.pool, board, w.orgs["sho1"], "info@nokey.example.jp", "",
                      DkimSettings())
    assert await w.count("SELECT count(*) FROM organisation_senders WHERE address = $1",
                         "info@nokey.example.jp") == 0
    made = await add_for(w.api.staff.pool, board, w.orgs["sho1"], "info@nokey.example.jp",
                         "第一小学校", DkimSettings(allow_unsigned=True))
    assert made.address == "info@nokey.example.jp"
