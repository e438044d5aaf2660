"""Boards are tenants: two boards in one database never see or touch each other's things.

Every staff API endpoint is listed in ``COVERED`` with the test that covers it, and
``test_every_staff_endpoint_is_covered`` fails when the app has an endpoint that is not there.
The matrix (``PROBES``) sends each request of one board's actors (board account, school
administrator, teacher, the board's and the school's API keys) once with the other board's id
and once with an id that does not exist: the answers must be the same (status, error code and
message with the id in it), so that another board's things cannot be told from unknown ones;
afterwards nothing of the other board has changed. The own-board requests still work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from commands import config_file
from staff.conftest import World
from staff.test_cli import run

from admin_api.staff import staff_routers
from engine.staff import audit

from .conftest import MISSING, PASSWORD, Side, Tenants

Pick = Callable[[int], int]


@dataclass(frozen=True)
class Req:
    method: str
    url: str
    json: Any = None
    params: dict[str, Any] | None = None
    multipart: dict[str, Any] | None = None
    idempotency: bool = False


def _body(audience: dict[str, Any]) -> dict[str, Any]:
    return {"sender": "school@example.jp", "subject": "お知らせ", "body": "本文",
            "audience": audience}


def _settings() -> dict[str, Any]:
    return {"opens": "06:00", "closes": "09:00", "reasons": ["発熱"]}


B = "/api/staff/broadcasts"
# name -> (method, route path, request builder(mine, theirs, pick)).
PROBES: dict[str, tuple[str, str, Callable[[Side, Side, Pick], Req]]] = {
    "list staff of an organisation": ("GET", "/api/staff/accounts", lambda m, t, p: Req(
        "GET", "/api/staff/accounts", params={"organisation_id": p(t.school)})),
    "add staff to a school": ("POST", "/api/staff/accounts", lambda m, t, p: Req(
        "POST", "/api/staff/accounts", json={
            "login": "intruder", "name": "侵入者", "role": "teacher",
            "organisation_id": p(t.school), "password": PASSWORD})),
    "add a board account": ("POST", "/api/staff/accounts", lambda m, t, p: Req(
        "POST", "/api/staff/accounts", json={
            "login": "intruder", "name": "侵入者", "role": "board",
            "organisation_id": p(t.board), "password": PASSWORD})),
    "disable staff": ("POST", "/api/staff/accounts/{staff_id}/disable", lambda m, t, p: Req(
        "POST", f"/api/staff/accounts/{p(t.teacher)}/disable")),
    "reset a password": ("POST", "/api/staff/accounts/{staff_id}/password", lambda m, t, p: Req(
        "POST", f"/api/staff/accounts/{p(t.teacher)}/password",
        json={"password": "another long password", "clear_totp": True})),
    "issue a key": ("POST", "/api/staff/api-keys", lambda m, t, p: Req(
        "POST", "/api/staff/api-keys", json={"name": "x", "organisation_id": p(t.school)})),
    "disable a key": ("POST", "/api/staff/api-keys/{key_id}/disable", lambda m, t, p: Req(
        "POST", f"/api/staff/api-keys/{p(t.key)}/disable")),
    "audit of an organisation": ("GET", "/api/staff/audit", lambda m, t, p: Req(
        "GET", "/api/staff/audit", params={"organisation_id": p(t.school), "action": "none"})),
    "audit CSV of an organisation": ("GET", "/api/staff/audit.csv", lambda m, t, p: Req(
        "GET", "/api/staff/audit.csv", params={"organisation_id": p(t.school),
                                               "action": "none"})),
    "send to a school": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"schools": [p(t.school)]}))),
    "send to a board": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"schools": [m.school], "classes": [p(t.klass)]}))),
    "send to a grade": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"grades": [p(t.grade)]}))),
    "send to a class": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"classes": [p(t.klass)]}))),
    "send to a group": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"groups": [p(t.group)]}))),
    "send to a board's group": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"groups": [p(t.board_group)]}))),
    "send to an account": ("POST", B, lambda m, t, p: Req(
        "POST", B, json=_body({"accounts": [p(t.account)]}))),
    "list broadcasts of an organisation": ("GET", B, lambda m, t, p: Req(
        "GET", B, params={"organisation_id": p(t.school)})),
    "status": ("GET", B + "/{broadcast_id}", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}")),
    "cancel": ("POST", B + "/{broadcast_id}/cancel", lambda m, t, p: Req(
        "POST", f"{B}/{p(t.broadcast)}/cancel")),
    "resend": ("POST", B + "/{broadcast_id}/resend", lambda m, t, p: Req(
        "POST", f"{B}/{p(t.broadcast)}/resend", json={"failed": False})),
    "resend filtered by a class": ("POST", B + "/{broadcast_id}/resend", lambda m, t, p: Req(
        "POST", f"{B}/{m.broadcast}/resend", json={"failed": False, "class_id": p(t.klass)})),
    "recipients": ("GET", B + "/{broadcast_id}/recipients", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/recipients")),
    "recipients of a grade": ("GET", B + "/{broadcast_id}/recipients", lambda m, t, p: Req(
        "GET", f"{B}/{m.broadcast}/recipients", params={"grade_id": p(t.grade)})),
    "recipients CSV": ("GET", B + "/{broadcast_id}/recipients.csv", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/recipients.csv")),
    "send with files": ("POST", B + "/with-files", lambda m, t, p: Req(
        "POST", f"{B}/with-files", multipart=_body({"schools": [p(t.school)]}))),
    "files": ("GET", B + "/{broadcast_id}/files", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/files")),
    "withdraw a file": ("DELETE", B + "/{broadcast_id}/files/{position}", lambda m, t, p: Req(
        "DELETE", f"{B}/{p(t.broadcast)}/files/1")),
    "app sends with files": ("POST", "/api/apps/broadcasts/with-files", lambda m, t, p: Req(
        "POST", "/api/apps/broadcasts/with-files", multipart=_body({"schools": [p(t.school)]}),
        idempotency=True)),
    "app sends": ("POST", "/api/apps/broadcasts", lambda m, t, p: Req(
        "POST", "/api/apps/broadcasts", json=_body({"schools": [p(t.school)]}),
        idempotency=True)),
    "app status": ("GET", "/api/apps/broadcasts/{broadcast_id}", lambda m, t, p: Req(
        "GET", f"/api/apps/broadcasts/{p(t.broadcast)}")),
    "template": ("GET", "/api/staff/templates/{saved_id}", lambda m, t, p: Req(
        "GET", f"/api/staff/templates/{p(t.template)}")),
    "change a template": ("PUT", "/api/staff/templates/{saved_id}", lambda m, t, p: Req(
        "PUT", f"/api/staff/templates/{p(t.template)}", json={"name": "書き換え"})),
    "delete a template": ("DELETE", "/api/staff/templates/{saved_id}", lambda m, t, p: Req(
        "DELETE", f"/api/staff/templates/{p(t.template)}")),
    "draft": ("GET", "/api/staff/drafts/{saved_id}", lambda m, t, p: Req(
        "GET", f"/api/staff/drafts/{p(t.draft)}")),
    "change a draft": ("PUT", "/api/staff/drafts/{saved_id}", lambda m, t, p: Req(
        "PUT", f"/api/staff/drafts/{p(t.draft)}", json={"name": "書き換え"})),
    "delete a draft": ("DELETE", "/api/staff/drafts/{saved_id}", lambda m, t, p: Req(
        "DELETE", f"/api/staff/drafts/{p(t.draft)}")),
    "send a draft": ("POST", "/api/staff/drafts/{saved_id}/send", lambda m, t, p: Req(
        "POST", f"/api/staff/drafts/{p(t.draft)}/send")),
    "reads": ("GET", B + "/{broadcast_id}/reads", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/reads")),
    "who has read": ("GET", B + "/{broadcast_id}/reads/accounts", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/reads/accounts")),
    "who has read in a class": ("GET", B + "/{broadcast_id}/reads/accounts",
                                lambda m, t, p: Req("GET", f"{B}/{m.broadcast}/reads/accounts",
                                                    params={"class_id": p(t.klass)})),
    "survey": ("GET", B + "/{broadcast_id}/survey", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/survey")),
    "answers": ("GET", B + "/{broadcast_id}/survey/answers", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/survey/answers")),
    "answers CSV": ("GET", B + "/{broadcast_id}/survey/answers.csv", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/survey/answers.csv")),
    "remind": ("POST", B + "/{broadcast_id}/remind", lambda m, t, p: Req(
        "POST", f"{B}/{p(t.broadcast)}/remind", json={"purpose": "read"})),
    "replies": ("GET", B + "/{broadcast_id}/replies", lambda m, t, p: Req(
        "GET", f"{B}/{p(t.broadcast)}/replies")),
    "reports of a school": ("GET", "/api/staff/reports", lambda m, t, p: Req(
        "GET", "/api/staff/reports", params={"school_id": p(t.school)})),
    "reports of a class": ("GET", "/api/staff/reports", lambda m, t, p: Req(
        "GET", "/api/staff/reports", params={"school_id": m.school, "class_id": p(t.klass)})),
    "reports CSV": ("GET", "/api/staff/reports.csv", lambda m, t, p: Req(
        "GET", "/api/staff/reports.csv", params={"school_id": p(t.school)})),
    "new reports": ("GET", "/api/staff/reports/new", lambda m, t, p: Req(
        "GET", "/api/staff/reports/new", params={"school_id": p(t.school)})),
    "mark reports seen": ("POST", "/api/staff/reports/seen", lambda m, t, p: Req(
        "POST", "/api/staff/reports/seen", params={"school_id": p(t.school)})),
    "report settings": ("GET", "/api/staff/reports/settings", lambda m, t, p: Req(
        "GET", "/api/staff/reports/settings", params={"school_id": p(t.school)})),
    "change report settings": ("PUT", "/api/staff/reports/settings", lambda m, t, p: Req(
        "PUT", "/api/staff/reports/settings", params={"school_id": p(t.school)},
        json=_settings())),
}

# Every endpoint of the staff API and the test that covers it across the two boards.
COVERED: dict[tuple[str, str], str] = {
    (method, path): "test_another_boards_things_answer_as_unknown_ones"
    for method, path, _ in PROBES.values()
} | {
    ("POST", "/api/staff/login"): "test_signing_in_acts_on_ones_own_account_only",
    ("POST", "/api/staff/logout"): "test_signing_in_acts_on_ones_own_account_only",
    ("GET", "/api/staff/session"): "test_signing_in_acts_on_ones_own_account_only",
    ("POST", "/api/staff/totp"): "test_signing_in_acts_on_ones_own_account_only",
    ("POST", "/api/staff/totp/confirm"): "test_signing_in_acts_on_ones_own_account_only",
    ("POST", "/api/staff/totp/remove"): "test_signing_in_acts_on_ones_own_account_only",
    ("POST", "/api/staff/password"): "test_signing_in_acts_on_ones_own_account_only",
    ("PUT", "/api/staff/reports/notify-address"):
        "test_signing_in_acts_on_ones_own_account_only",
    ("GET", "/api/staff/policy"): "test_the_totp_policy_is_per_board",
    ("PUT", "/api/staff/policy"): "test_the_totp_policy_is_per_board",
    ("GET", "/api/staff/api-keys"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/senders"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/organisation"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/registration-rate"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/templates"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/drafts"): "test_lists_show_only_ones_own_board",
    ("GET", "/api/staff/audit/verify"): "test_the_audit_log_is_each_boards_own",
    ("GET", "/api/staff/audit"): "test_the_audit_log_is_each_boards_own",
    ("GET", "/api/staff/audit.csv"): "test_the_audit_log_is_each_boards_own",
    ("POST", "/api/staff/templates"): "test_own_board_actions_still_work",
    ("POST", "/api/staff/drafts"): "test_own_board_actions_still_work",
}


def _routes() -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for router in staff_routers() for route in router.routes
        for method in getattr(route, "methods", ()) or ()
    }


def test_every_staff_endpoint_is_covered() -> None:
    routes = _routes()
    assert len(routes) >= 50
    missing = routes - set(COVERED)
    assert not missing, f"endpoints without a tenancy test: {sorted(missing)}"
    assert set(COVERED) <= routes, sorted(set(COVERED) - routes)
    for test in set(COVERED.values()):
        assert callable(globals().get(test)), test


async def _send(c: httpx.AsyncClient, req: Req, key: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if req.idempotency else {}
    if req.multipart is not None:
        return await c.request(
            req.method, req.url, headers=headers,
            data={"broadcast": json.dumps(req.multipart)},
            files=[("files", ("note.txt", "お知らせ\n".encode(), "text/plain"))],
        )
    return await c.request(req.method, req.url, json=req.json, params=req.params,
                           headers=headers)


def _answer(r: httpx.Response, ids: list[int]) -> tuple[int, str]:
    """The status and body with the probed ids replaced, to compare two answers."""
    text = r.content.decode("utf-8", "replace")
    for ident in ids:
        text = re.sub(rf"\b{ident}\b", "ID", text)
    return r.status_code, text


async def _snapshot(t: Tenants, side: Side) -> list[Any]:
    """Everything of ``side`` a probe could change."""
    pool = t.w.api.staff.pool
    orgs = sorted(side.orgs)
    out: list[Any] = []
    for sql in (
        "SELECT id, login, password_hash, totp_sealed, disabled_at, role, organisation_id "
        "FROM staff WHERE organisation_id = ANY($1) ORDER BY id",
        "SELECT id, disabled_at, organisation_id FROM api_keys WHERE organisation_id = ANY($1) "
        "ORDER BY id",
        "SELECT b.id, b.cancelled_at, b.recipient_count FROM broadcasts b "
        "JOIN broadcast_owners o ON o.broadcast_id = b.id WHERE o.organisation_id = ANY($1) "
        "ORDER BY b.id",
        "SELECT d.id, d.state FROM deliveries d JOIN broadcast_owners o "
        "ON o.broadcast_id = d.broadcast_id WHERE o.organisation_id = ANY($1) ORDER BY d.id",
        "SELECT id, name, updated_at FROM saved_messages WHERE organisation_id = ANY($1) "
        "ORDER BY id",
        "SELECT * FROM staff_policy WHERE board_id = ANY($1)",
    ):
        out.append([tuple(r) for r in await pool.fetch(sql, orgs)])
    out.append(await pool.fetchval("SELECT count(*) FROM broadcasts"))
    return out


async def _probe_all(t: Tenants, mine: Side, theirs: Side) -> list[str]:
    """Every probe by every actor of ``mine`` against ``theirs``; the differences found."""
    problems: list[str] = []
    for actor, token in mine.actors.items():
        async with t.w.client(token) as c:
            for name, (_, _, build) in PROBES.items():
                picked: list[int] = []

                def pick(x: int, picked: list[int] = picked) -> int:
                    picked.append(x)
                    return x

                their = build(mine, theirs, pick)
                unknown = build(mine, theirs, lambda x: MISSING)
                r1 = await _send(c, their, f"{actor}-{name}-1")
                r2 = await _send(c, unknown, f"{actor}-{name}-2")
                a1, a2 = _answer(r1, picked), _answer(r2, [MISSING])
                if a1 != a2:
                    problems.append(f"{actor} / {name}: {a1[0]} {a1[1][:200]} <> "
                                    f"{a2[0]} {a2[1][:200]}")
    return problems


async def test_another_boards_things_answer_as_unknown_ones(tenants: Tenants) -> None:
    t = tenants
    for mine, theirs in ((t.town, t.city), (t.city, t.town)):
        before = await _snapshot(t, theirs)
        problems = await _probe_all(t, mine, theirs)
        assert problems == [], "\n".join(problems)
        assert await _snapshot(t, theirs) == before


async def test_lists_show_only_ones_own_board(tenants: Tenants) -> None:
    t = tenants
    # Each board's own From address (the schools share the test world's common ones).
    own_senders = {t.w.orgs["town"]: {"kyouiku@town.example.jp"},
                   t.w.orgs["city"]: {"kyouiku@city.example.jp"}}
    for mine, theirs in ((t.town, t.city), (t.city, t.town)):
        their_broadcasts = {theirs.broadcast, *theirs.own_broadcast.values()}
        for actor, token in mine.actors.items():
            async with t.w.client(token) as c:
                listed = await c.get(B, params={"limit": 1000})
                assert listed.status_code == 200, (actor, listed.text)
                ids = {b["id"] for b in listed.json()["items"]}
                assert ids and not ids & their_broadcasts, actor
                staff = await c.get("/api/staff/accounts")
                if staff.status_code == 200:
                    assert {m["organisation_id"] for m in staff.json()} <= mine.orgs, actor
                keys = await c.get("/api/staff/api-keys")
                if keys.status_code == 200:
                    assert {k["organisation_id"] for k in keys.json()} <= mine.orgs, actor
                for kind in ("templates", "drafts"):
                    saved = await c.get(f"/api/staff/{kind}")
                    if saved.status_code == 200:
                        assert {x["organisation_id"] for x in saved.json()} <= mine.orgs
                listed_senders = await c.get("/api/staff/senders")
                if listed_senders.status_code == 200:
                    senders = {x["address"] for x in listed_senders.json()}
                    assert senders and not senders & own_senders[theirs.board], actor
                org = await c.get("/api/staff/organisation")
                assert org.status_code == 200, (actor, org.text)
                o = org.json()
                units = {x["id"] for x in o["schools"]} | ({o["board"]["id"]} if o["board"]
                                                           else set())
                assert units and units <= mine.orgs, actor
                assert not {x["id"] for x in o["classes"]} & {theirs.klass}, actor
                assert not {x["id"] for x in o["groups"]} & {theirs.group, theirs.board_group}
                codes = {code for code, id_ in t.w.orgs.items() if id_ in mine.orgs}
                rate = await c.get("/api/staff/registration-rate")
                if rate.status_code == 200:
                    assert {x["school"] for x in rate.json()["items"]} <= codes, actor
                their_code = next(k for k, v in t.w.orgs.items() if v == theirs.school)
                other = await c.get("/api/staff/registration-rate", params={"school": their_code})
                assert other.status_code in (403, 404, 422), (actor, other.text)
        board = mine.actors["board"]
        async with t.w.client(board) as c:
            # The board's lists are whole for its own board (positive control).
            staff = {m["organisation_id"] for m in (await c.get("/api/staff/accounts")).json()}
            keys = {k["organisation_id"] for k in (await c.get("/api/staff/api-keys")).json()}
            templates = (await c.get("/api/staff/templates")).json()
        assert {mine.board, mine.school} <= staff <= mine.orgs
        assert mine.school in keys and keys <= mine.orgs
        assert [x["id"] for x in templates] == [mine.template]


async def test_own_board_actions_still_work(tenants: Tenants) -> None:
    t = tenants
    w = t.w
    for side, name in ((t.town, "town"), (t.city, "city")):
        async with w.client(side.actors["board"]) as c:
            made = await c.post("/api/staff/accounts", json={
                "login": f"new-{name}", "name": "新任", "role": "teacher",
                "organisation_id": side.school, "password": PASSWORD,
                "class_ids": [side.klass]})
            assert made.status_code == 201, made.text
            assert (await c.post(f"/api/staff/accounts/{side.teacher}/password", json={
                "password": "another long password"})).status_code == 200
            key = await c.post("/api/staff/api-keys",
                               json={"name": "own", "organisation_id": side.school})
            assert key.status_code == 201, key.text
            made_key = key.json()["id"]
            assert (await c.post(f"/api/staff/api-keys/{made_key}/disable")).status_code == 200
            for path in ("", "/recipients", "/reads", "/survey", "/files"):
                r = await c.get(f"{B}/{side.broadcast}{path}")
                assert r.status_code == 200, (path, r.text)
            reports = await c.get("/api/staff/reports", params={"school_id": side.school})
            assert reports.status_code == 200, reports.text
            template = await c.post("/api/staff/templates", json={"name": "board"})
            assert template.status_code == 201
            assert template.json()["organisation_id"] == side.board
            assert (await c.put(f"/api/staff/templates/{side.template}",
                                json={"name": "直した"})).status_code == 200
            draft = await c.post("/api/staff/drafts", json={
                "name": "全体へ", "sender": "board@example.jp", "subject": "s", "body": "b",
                "audience": {"board": True}})
            assert draft.status_code == 201
            sent = await c.post(f"/api/staff/drafts/{draft.json()['id']}/send")
            assert sent.status_code == 201, sent.text
            assert (await c.post(f"{B}/{side.broadcast}/cancel")).status_code == 200
        to_board = await w.api.staff.pool.fetch(
            "SELECT DISTINCT a.school_id FROM delivery_accounts da "
            "JOIN accounts a ON a.id = da.account_id "
            "JOIN deliveries d ON d.id = da.delivery_id WHERE d.broadcast_id = $1",
            sent.json()["broadcast_id"],
        )
        their = t.city if side is t.town else t.town
        assert to_board and their.school not in {r["school_id"] for r in to_board}
        async with w.client(side.actors["admin"]) as c:
            assert (await c.post(B, json=_body({"schools": [side.school]}))).status_code == 201
            assert (await c.get("/api/staff/reports",
                                params={"school_id": side.school})).status_code == 200
        async with w.client(side.actors["school key"]) as c:
            r = await c.post("/api/apps/broadcasts", json=_body({"schools": [side.school]}),
                             headers={"Idempotency-Key": f"own-{name}"})
            assert r.status_code == 201, r.text


async def test_signing_in_acts_on_ones_own_account_only(tenants: Tenants) -> None:
    t = tenants
    w = t.w
    token = await w.login("tteacher")
    async with w.client(token) as c:
        me = (await c.get("/api/staff/session")).json()
        assert me["staff"]["login"] == "tteacher"
        assert (await c.post("/api/staff/totp", json={"current_password": PASSWORD})
                ).status_code == 200
        assert (await c.post("/api/staff/totp/confirm", json={"code": "000000"})
                ).status_code == 422
        # Removing a TOTP that is not set up, and changing the password: one's own only.
        assert (await c.post("/api/staff/totp/remove", json={
            "current_password": PASSWORD, "totp_code": "000000"})).status_code == 422
        hashes = dict(await w.api.staff.pool.fetch(
            "SELECT login, password_hash FROM staff WHERE login <> 'tteacher'"))
        changed = await c.post("/api/staff/password", json={
            "current_password": PASSWORD, "new_password": "a new long passphrase 2026"})
        assert changed.status_code == 200, changed.text
        assert dict(await w.api.staff.pool.fetch(
            "SELECT login, password_hash FROM staff WHERE login <> 'tteacher'")) == hashes
        assert (await c.put("/api/staff/reports/notify-address",
                            json={"address": "t@town.example.jp"})).json()["staff_id"] == (
            w.staff["tteacher"])
        assert (await c.post("/api/staff/logout")).status_code in (200, 204)
    pool = w.api.staff.pool
    assert await pool.fetchval(
        "SELECT count(*) FROM staff WHERE totp_pending IS NOT NULL") == 1
    assert await pool.fetchval(
        "SELECT totp_pending IS NOT NULL FROM staff WHERE login = 'tteacher'")


async def test_the_totp_policy_is_per_board(tenants: Tenants) -> None:
    t = tenants
    w = t.w
    async with w.client(t.town.actors["admin"]) as c:
        assert (await c.put("/api/staff/policy", json={"totp_required": True})
                ).status_code == 403
    async with w.client(t.town.actors["board"]) as c:
        r = await c.put("/api/staff/policy", json={"totp_required": True})
        assert r.status_code == 200 and r.json() == {"totp_required": True}
    for side, required in ((t.town, True), (t.city, False)):
        for actor in ("board", "admin", "teacher"):
            token = side.actors[actor]
            async with w.client(token) as c:
                r = await c.get("/api/staff/policy")
                assert r.status_code == (403 if required else 200), (actor, r.text)
                if not required:
                    assert r.json() == {"totp_required": False}
    # A town school's staff signing in now may only set TOTP up; the city's are untouched.
    limited = await w.login("tadmin")
    async with w.client(limited) as c:
        assert (await c.get(B)).status_code == 403
    async with w.client(await w.login("admin1")) as c:
        assert (await c.get(B)).status_code == 200
    assert await w.count(
        "SELECT count(*) FROM staff_policy WHERE board_id = $1 AND totp_required",
        t.city.board) == 0


async def test_the_audit_log_is_each_boards_own(tenants: Tenants) -> None:
    t = tenants
    w = t.w
    names = {"city": ("board", "admin1", "teacher31"), "town": ("tboard", "tadmin", "tteacher")}
    for side, mine, theirs in ((t.town, "town", "city"), (t.city, "city", "town")):
        async with w.client(side.actors["board"]) as c:
            page = (await c.get("/api/staff/audit", params={"limit": 1000})).json()
            csv = (await c.get("/api/staff/audit.csv")).text
            verify = (await c.get("/api/staff/audit/verify")).json()
        actors = {e["actor_name"] for e in page["items"]}
        assert set(names[mine]) <= actors
        assert not actors & set(names[theirs])
        assert {e["organisation_id"] for e in page["items"]} <= side.orgs
        assert not any(f",{n}," in csv for n in names[theirs])
        # The chain's entries of this board: those listed, and the view and export since.
        assert verify["ok"] and verify["checked"] == page["total"] + 2
    # Tamper with a city entry: both boards learn the chain is broken, only the city what.
    pool = w.api.staff.pool
    seq = await pool.fetchval(
        "SELECT max(seq) FROM audit_log WHERE organisation_id = $1", t.city.school)
    await pool.execute("UPDATE audit_log SET detail = 'changed' WHERE seq = $1", seq)
    async with w.client(t.town.actors["board"]) as c:
        town = (await c.get("/api/staff/audit/verify")).json()
    async with w.client(t.city.actors["board"]) as c:
        city = (await c.get("/api/staff/audit/verify")).json()
    assert not town["ok"] and town["first_bad"] == seq == city["first_bad"]
    who = await pool.fetchval("SELECT actor_name FROM audit_log WHERE seq = $1", seq)
    assert who in city["message"] and who not in town["message"]
    assert "(entry" in town["message"] and " by " not in town["message"]
    assert (await audit.verify(pool, w.api.staff.audit_key)).first_bad == seq


def _config(tmp_path: Path, w: World) -> Path:
    return config_file(
        tmp_path, w.settings.database.url, "127.0.0.1:9", people_key=w.settings.people.key
    )


async def test_the_command_lines_as_options_keep_to_the_board(
    tenants: Tenants, tmp_path: Path
) -> None:
    """Every command that takes --as (or --api-key-file): send, broadcasts status and
    broadcasts recipients answer another board's things as unknown ones."""
    t = tenants
    w = t.w
    cfg = _config(tmp_path, w)
    body = tmp_path / "body.txt"
    body.write_text("本文\n", encoding="utf-8")
    key_file = tmp_path / "town.key"
    key_file.write_text(t.town.actors["board key"] + "\n", encoding="utf-8")
    send = ["send", "-c", cfg, "--sender", "school@example.jp", "--subject", "件名",
            "--body-file", body]
    before = await _snapshot(t, t.city)
    for who in (["--as", "tboard"], ["--as", "tadmin"], ["--api-key-file", key_file]):
        for what in (["--school", "sho1"], ["--group", "city/市全体"],
                     ["--school", "sho1", "--class", "3-1"]):
            theirs = await run(*send, *who, *what)
            unknown = await run(*send, *who,
                                *[x.replace("sho1", "nosuch").replace("city/", "nosuch/")
                                  for x in what])
            assert theirs[0] == unknown[0] == 2, (who, what, theirs, unknown)
            assert "はありません" in theirs[2] or "登録されていません" in theirs[2], theirs
            # The same answer but for the name typed (another board's names are not listed).
            assert theirs[2].replace("sho1", "X").replace("city/", "X/") == unknown[2].replace(
                "nosuch", "X"), (theirs, unknown)
        for command in (["broadcasts", "status"], ["broadcasts", "recipients"]):
            theirs = await run(*command, str(t.city.broadcast), "-c", cfg, *who)
            unknown = await run(*command, str(MISSING), "-c", cfg, *who)
            assert theirs[0] == unknown[0] == 2, (command, theirs)
            assert theirs[2].replace(str(t.city.broadcast), "ID") == unknown[2].replace(
                str(MISSING), "ID")
    assert await _snapshot(t, t.city) == before
    # Own board: --board is the actor's board, its own broadcast is readable.
    code, out, err = await run(*send, "--as", "tboard", "--board")
    assert code == 0, err
    schools = await w.api.staff.pool.fetch(
        "SELECT DISTINCT a.school_id FROM delivery_accounts da JOIN accounts a "
        "ON a.id = da.account_id JOIN deliveries d ON d.id = da.delivery_id "
        "WHERE d.broadcast_id = $1", int(out.strip()))
    assert [r["school_id"] for r in schools] == [t.town.school]
    code, out, err = await run("broadcasts", "status", str(t.town.broadcast), "-c", cfg,
                               "--as", "tadmin", "--json")
    assert code == 0, err


async def test_the_operator_adds_board_staff_to_the_board_named(
    tenants: Tenants, tmp_path: Path
) -> None:
    t = tenants
    cfg = _config(tmp_path, t.w)
    add = ["staff", "add", "town.kacho", "--name", "町 課長", "--role", "board",
           "--password-stdin", "-c", cfg]
    code, _, err = await run(*add, stdin=PASSWORD + "\n")
    assert code == 2, err  # two boards: which one must be said
    code, _, err = await run(*add, "--board", "tsho", stdin=PASSWORD + "\n")
    assert code == 2 and "教育委員会ではありません" in err, err
    code, _, err = await run(*add, "--board", "town", stdin=PASSWORD + "\n")
    assert code == 0, err
    org = await t.w.api.staff.pool.fetchval(
        "SELECT organisation_id FROM staff WHERE login = 'town.kacho'")
    assert org == t.town.board
