"""The role matrix of the settings screen's delete confirmations: the question 「本当に削除
しますか」 is itself within the rights of the deletion. Outside them the first POST is the
Japanese refusal the deletion would be (403, or unknown for another board's), shows nothing of
what it names, and nothing changes."""

from __future__ import annotations

from screens.helpers import client, csrf_of, signed_in
from staff.conftest import World

from .test_screens_roles import two_boards  # noqa: F401  (the fixture, reused)


async def test_the_question_is_asked_only_within_the_rights(
    two_boards: World,  # noqa: F811
) -> None:
    w = two_boards
    pool = w.api.staff.pool
    tid = {}
    for org in ("city", "sho1", "town"):
        tid[org] = await pool.fetchval(
            "INSERT INTO saved_messages (kind, organisation_id, name, subject, body, category, "
            "priority, created_at, updated_at) VALUES ('template', $1, $2, '件名の秘密', 'b', "
            "'notice', 1, now(), now()) RETURNING id", w.orgs[org], f"{org}の文面")
    sho1, town = w.orgs["sho1"], w.orgs["town"]
    sender = {"address": "school@sho1.example.jp", "organisation_id": str(sho1),
              "school_id": str(sho1)}
    refused = {
        "teacher31": [(f"/staff/settings/templates/{tid['sho1']}/delete", {}, 403),
                      ("/staff/settings/senders/remove", sender, 403)],
        "admin1": [(f"/staff/settings/templates/{tid['city']}/delete", {}, 403),
                   (f"/staff/settings/templates/{tid['town']}/delete", {}, 404),
                   ("/staff/settings/senders/remove", sender, 403)],
        "board": [(f"/staff/settings/templates/{tid['town']}/delete", {}, 404),
                  ("/staff/settings/senders/remove",
                   {**sender, "organisation_id": str(town),
                    "address": "kyouiku@town.example.jp"}, 422)],
        "tboard": [(f"/staff/settings/templates/{tid['sho1']}/delete", {}, 404),
                   ("/staff/settings/senders/remove", sender, 422)],
    }
    before = [await pool.fetch("SELECT * FROM saved_messages ORDER BY id"),
              await pool.fetch("SELECT * FROM organisation_senders ORDER BY address")]
    for login, posts in refused.items():
        async with client(w) as c:
            await signed_in(c, login)
            token = csrf_of((await c.get("/staff/home")).text)
            for path, form, status in posts:
                got = await c.post(path, data={"csrf": token, **form})
                assert got.status_code == status, (login, path, got.status_code)
                assert "本当に削除しますか" not in got.text, (login, path)
                assert "件名の秘密" not in got.text, (login, path)
    after = [await pool.fetch("SELECT * FROM saved_messages ORDER BY id"),
             await pool.fetch("SELECT * FROM organisation_senders ORDER BY address")]
    assert after == before
    # Within the rights, the same first POST asks.
    async with client(w) as c:
        token = await signed_in(c, "board")
        got = await c.post("/staff/settings/senders/remove", data={"csrf": token, **sender})
        assert got.status_code == 200 and "本当に削除しますか" in got.text
        got = await c.post(f"/staff/settings/templates/{tid['city']}/delete",
                           data={"csrf": token})
        assert got.status_code == 200 and "cityの文面" in got.text
