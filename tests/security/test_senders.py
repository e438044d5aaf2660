"""Senders belong to the organisation: a broadcast's From is one of its owner's addresses and
its domain signable, refused at the request on every path (HTTP, SMTP submission, the command
line's --as), never discovered when sending."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_commands.test_cli_as_staff import config, send_args
from staff.conftest import World, world  # noqa: F401 - the fixture, reused
from staff.test_cli import run
from submission.conftest import DOMAIN, Submit, submit  # noqa: F401 - the fixture, reused
from submission.test_submission import mail, send

from engine.message.dkim import DkimSettings
from engine.platform.errors import InputError
from engine.staff import accounts, sessions
from engine.staff.senders import add_sender, sender_for

AUDIENCE_31 = "sho1-3-1"


def _body(w: World, sender: str | None) -> dict[str, object]:
    body: dict[str, object] = {
        "subject": "不審者情報", "body": "下校時に不審者が目撃されました。",
        "audience": {"classes": [w.classes[AUDIENCE_31]]}, "priority": "emergency",
    }
    if sender is not None:
        body["sender"] = sender
    return body


async def test_a_teacher_cannot_choose_any_from(world: World) -> None:  # noqa: F811
    teacher = await world.login("teacher31")
    async with world.client(teacher) as c:
        for forged in ("someone@gmail.com", "kyouiku@city.example.jp"):
            r = await c.post("/api/staff/broadcasts", json=_body(world, forged))
            assert r.status_code == 422, r.text
            assert "使える差出人" in r.json()["message"] and forged in r.json()["message"]
        assert await world.count("SELECT count(*) FROM broadcasts") == 0
        # One of the school's addresses goes; none given takes the school's first.
        r = await c.post("/api/staff/broadcasts", json=_body(world, "school@example.jp"))
        assert r.status_code == 201, r.text
        r = await c.post("/api/staff/broadcasts", json=_body(world, None))
        assert r.status_code == 201, r.text
        listed = (await c.get("/api/staff/senders")).json()
    assert listed[0]["address"] == "sho1@example.jp"
    senders = await world.api.staff.pool.fetch("SELECT sender FROM broadcasts ORDER BY id")
    assert [r["sender"] for r in senders] == ["school@example.jp", "sho1@example.jp"]


async def test_a_board_broadcast_uses_the_boards_address_and_its_display_name(
    world: World,  # noqa: F811
) -> None:
    await add_sender(world.api.staff.pool, world.orgs["city"], "kyouiku@city.example.jp",
                     "みどり市教育委員会", DkimSettings(allow_unsigned=True))
    board = await world.login("board")
    async with world.client(board) as c:
        r = await c.post("/api/staff/broadcasts", json={
            **_body(world, None), "audience": {"board": True}})
        assert r.status_code == 201, r.text
    row = await world.api.staff.pool.fetchrow("SELECT sender, sender_name FROM broadcasts")
    assert (row["sender"], row["sender_name"]) == ("kyouiku@city.example.jp", "みどり市教育委員会")
    # A school's administrator cannot take the board's address.
    admin = await world.login("admin1")
    async with world.client(admin) as c:
        r = await c.post("/api/staff/broadcasts", json=_body(world, "kyouiku@city.example.jp"))
    assert r.status_code == 422


async def test_a_domain_without_a_dkim_key_is_refused_when_added_and_when_used(
    world: World,  # noqa: F811
) -> None:
    pool = world.api.staff.pool
    with pytest.raises(InputError, match="DKIM"):
        await add_sender(pool, world.orgs["sho1"], "info@nokey.example.jp", "", DkimSettings())
    assert await pool.fetchval(
        "SELECT count(*) FROM organisation_senders WHERE address = 'info@nokey.example.jp'") == 0
    # A key removed after the address was registered: refused at the request, not held later.
    member = await accounts.find(world.api.staff, "teacher31")
    actor = await sessions.principal_of(world.api.staff, member, "127.0.0.1")
    with pytest.raises(InputError, match="DKIM"):
        await sender_for(pool, actor, "school@example.jp", DkimSettings())
    chosen = await sender_for(pool, actor, "", DkimSettings(allow_unsigned=True))
    assert chosen.address == "sho1@example.jp"


async def test_smtp_submission_from_another_address_is_refused(
    submit: Submit,  # noqa: F811
) -> None:
    forged = mail(f"all@sho1.{DOMAIN}")
    forged.replace_header("From", "校長 <principal@gmail.com>")
    code, text = await send(submit, submit.keys["sho1"], forged)
    assert code >= 500 and "principal@gmail.com" in text, text
    assert await submit.broadcasts() == 0
    code, _ = await send(submit, submit.keys["sho1"], mail(f"all@sho1.{DOMAIN}"))
    assert code == 250
    assert await submit.broadcasts() == 1


@pytest.mark.slow
async def test_the_command_lines_as_keeps_to_the_schools_addresses(
    world: World, tmp_path: Path  # noqa: F811
) -> None:
    cfg = config(tmp_path, world)
    args = send_args(tmp_path, cfg, "--as", "teacher31", "--school", "sho1", "--class", "3-1")
    forged = [a if a != "school@sho1.example.jp" else "city@gmail.com" for a in args]
    code, _, err = await run(*forged)
    assert code == 2 and "city@gmail.com" in err, err
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
    code, _, err = await run(*args)
    assert code == 0, err
