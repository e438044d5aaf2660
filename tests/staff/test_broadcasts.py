"""Broadcasts through the staff API: send now or later, cancel, lists, counts, recipients, CSV,
bad input answered in Japanese and English with nothing stored."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from .conftest import World

SENDER = "sho1@example.jp"


def body(audience: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "sender": SENDER, "subject": "臨時休校のお知らせ", "body": "台風のため休校します。",
        "audience": audience, **extra,
    }


async def broadcasts(world: World) -> int:
    return await world.count("SELECT count(*) FROM broadcasts")


async def grade3_with_jiro_failed(world: World, token: str, columns: str) -> int:
    """A broadcast to grade 3 of sho1 whose delivery to jiro is failed with ``columns`` (SQL
    assignments, as the runner would record them); its id."""
    async with world.client(token) as c:
        bid: int = (await c.post("/api/staff/broadcasts", json=body(
            {"grades": [world.grades["sho1-3"]]}))).json()["broadcast_id"]
    await world.api.staff.pool.execute(
        f"UPDATE deliveries SET state = 'failed', {columns} "
        "WHERE broadcast_id = $1 AND recipient_hash = $2",
        bid, world.api.people.sealer.address_hash("jiro@softbank.ne.jp"),
    )
    return bid


async def test_a_school_sends_to_one_class_and_sees_its_status(world: World) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.post("/api/staff/broadcasts", json=body(
            {"classes": [world.classes["sho1-3-1"]]}, category="emergency", priority="emergency"
        ))
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["recipients"] == 2 and made["replayed"] is False
        assert made["status_url"].endswith(f"/api/staff/broadcasts/{made['broadcast_id']}")
        status = await c.get(made["status_url"])
    assert status.status_code == 200
    b = status.json()["broadcast"]
    assert b["state"] == "sending" and b["state_label_ja"] == "配信中"
    assert b["by_state"]["queued"] == 2 and b["category"] == "emergency"
    assert b["organisation_id"] == world.orgs["sho1"]
    assert status.json()["body"] == "台風のため休校します。"
    assert status.json()["audience"] == {"classes": [world.classes["sho1-3-1"]], "addresses": 0}
    audited = await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'broadcast.create' AND result = 'ok' "
        "AND object = $1 AND actor_name = 'admin1'",
        f"broadcast {made['broadcast_id']}",
    )
    assert audited == 1


async def test_a_scheduled_broadcast_waits_and_can_be_cancelled(world: World) -> None:
    token = await world.login("admin1")
    later = (world.clock.now() + timedelta(hours=2)).isoformat()
    async with world.client(token) as c:
        made = (await c.post("/api/staff/broadcasts", json=body(
            {"schools": [world.orgs["sho1"]]}, send_at=later
        ))).json()
        bid = made["broadcast_id"]
        assert (await c.get(f"/api/staff/broadcasts/{bid}")).json()["broadcast"]["state"] == (
            "scheduled"
        )
        r = await c.post(f"/api/staff/broadcasts/{bid}/cancel")
        assert r.status_code == 200 and r.json()["cancelled"] == 4
        st = (await c.get(f"/api/staff/broadcasts/{bid}")).json()
        assert st["broadcast"]["state"] == "cancelled"
        assert st["by_category"] == [
            {"category": "cancelled", "label_ja": "配信取り消し", "state": "failed", "count": 4}
        ]
        again = await c.post(f"/api/staff/broadcasts/{bid}/cancel")
    assert again.status_code == 422 and "取り消し済み" in again.json()["message"]


async def test_bad_input_is_refused_clearly_and_stores_nothing(world: World) -> None:
    token = await world.login("board")
    past = (world.clock.now() - timedelta(hours=1)).isoformat()
    async with world.client(token) as c:
        cases = {
            "past": await c.post("/api/staff/broadcasts", json=body(
                {"schools": [world.orgs["sho1"]]}, send_at=past)),
            "group": await c.post("/api/staff/broadcasts", json=body({"groups": [999999]})),
            "empty": await c.post("/api/staff/broadcasts", json=body({})),
            "sender": await c.post("/api/staff/broadcasts", json={
                **body({"schools": [world.orgs["sho1"]]}), "sender": "not an address"}),
            "category": await c.post("/api/staff/broadcasts", json=body(
                {"schools": [world.orgs["sho1"]]}, category="gossip")),
            "json": await c.post(
                "/api/staff/broadcasts", content=b'{"sender": "x@y.jp", "subject": ',
                headers={"content-type": "application/json"},
            ),
        }
    assert cases["past"].status_code == 422 and "過去" in cases["past"].json()["message"]
    assert cases["group"].status_code == 422
    assert "グループ 999999 はありません" in cases["group"].json()["message"]
    assert "unknown group" in cases["group"].json()["message"]
    assert cases["empty"].status_code == 422 and "配信先" in cases["empty"].json()["message"]
    assert cases["sender"].status_code == 422
    assert cases["category"].status_code == 422
    assert "入力が正しくありません" in cases["category"].json()["message"]
    assert cases["json"].status_code == 400 and cases["json"].json()["error"] == "malformed"
    assert "JSON" in cases["json"].json()["message"]
    assert await broadcasts(world) == 0
    assert await world.count("SELECT count(*) FROM deliveries") == 0


async def test_lists_filter_and_page_newest_first(world: World) -> None:
    token = await world.login("board")
    async with world.client(token) as c:
        ids = []
        for category in ("notice", "emergency", "notice"):
            r = await c.post("/api/staff/broadcasts", json=body(
                {"schools": [world.orgs["sho2"]]}, category=category))
            ids.append(r.json()["broadcast_id"])
        page = (await c.get("/api/staff/broadcasts", params={"limit": 2})).json()
        notices = (await c.get("/api/staff/broadcasts", params={"category": "notice"})).json()
        second = (await c.get("/api/staff/broadcasts", params={"limit": 2, "offset": 2})).json()
        bad = await c.get("/api/staff/broadcasts", params={"limit": 0})
    assert page["total"] == 3 and [b["id"] for b in page["items"]] == ids[::-1][:2]
    assert [b["id"] for b in second["items"]] == [ids[0]]
    assert notices["total"] == 2 and {b["category"] for b in notices["items"]} == {"notice"}
    assert bad.status_code == 422


async def test_recipients_are_listed_filtered_and_downloaded_as_csv_with_bom(
    world: World,
) -> None:
    token = await world.login("admin1")
    # One recipient failed as unknown user (what the runner would record).
    bid = await grade3_with_jiro_failed(
        world, token, "category = 'unknown_user', reason = 'userunknown', last_code = 550, "
        "last_text = '=cmd|user unknown'")
    async with world.client(token) as c:
        every = (await c.get(f"/api/staff/broadcasts/{bid}/recipients")).json()
        failed = (await c.get(
            f"/api/staff/broadcasts/{bid}/recipients", params={"failed": "true"})).json()
        unknown = (await c.get(
            f"/api/staff/broadcasts/{bid}/recipients", params={"category": "unknown_user"}
        )).json()
        status = (await c.get(f"/api/staff/broadcasts/{bid}")).json()
        r = await c.get(f"/api/staff/broadcasts/{bid}/recipients.csv")
    assert every["total"] == 3
    assert [x["address"] for x in failed["items"]] == ["jiro@softbank.ne.jp"]
    assert failed["items"][0]["category_label_ja"] == "宛先不明"
    assert unknown["total"] == 1
    assert {"category": "unknown_user", "label_ja": "宛先不明", "state": "failed", "count": 1} in (
        status["by_category"]
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["宛先", "アカウント", "状態"] and len(rows) == 4
    jiro = next(row for row in rows if row[0] == "jiro@softbank.ne.jp")
    assert jiro[1] == "佐藤次郎 (3年2組)"
    assert jiro[2] == "配信失敗" and jiro[7] == "宛先不明"
    # A reply that looks like a formula is kept as text for Excel.
    assert jiro[8] == "'=cmd|user unknown"


async def test_resend_to_those_who_failed_for_a_temporary_reason(world: World) -> None:
    from engine.people.contacts import leave

    token = await world.login("admin1")
    async with world.client(token) as c:
        first = (await c.post("/api/staff/broadcasts", json=body(
            {"schools": [world.orgs["sho1"]]}))).json()["broadcast_id"]
    pool = world.api.staff.pool
    for address, state, category in (
        ("taro@docomo.ne.jp", "failed", "mailbox_full"),  # temporary
        ("hanako@ezweb.ne.jp", "deferred", "mailbox_full"),  # temporary, still retrying
        ("jiro@softbank.ne.jp", "failed", "unknown_user"),  # permanent
        ("ichiro@example.jp", "delivered", None),
    ):
        await pool.execute(
            "UPDATE deliveries SET state = $3, category = $4 "
            "WHERE broadcast_id = $1 AND recipient_hash = $2",
            first, world.api.people.sealer.address_hash(address), state, category,
        )
    # Hanako's guardian asked to receive nothing more since.
    await leave(world.api.people, "hanako@ezweb.ne.jp")
    async with world.client(token) as c:
        r = await c.post(f"/api/staff/broadcasts/{first}/resend",
                         json={"failed": True, "temporary": True, "subject": "再送: 臨時休校"})
        assert r.status_code == 201, r.text
        again = r.json()["broadcast_id"]
        st = (await c.get(f"/api/staff/broadcasts/{again}")).json()["broadcast"]
        nobody = await c.post(f"/api/staff/broadcasts/{first}/resend",
                              json={"state": "queued"})
    assert r.json()["recipients"] == 1
    assert st["resend_of"] == first and st["subject"] == "再送: 臨時休校"
    assert st["organisation_id"] == world.orgs["sho1"]
    rows = await world.api.queue.deliveries_of(again)
    assert [x["recipient"] for x in rows] == ["taro@docomo.ne.jp"]
    assert nobody.status_code == 422 and "再送する宛先がありません" in nobody.json()["message"]
    # Another school cannot resend it; a teacher cannot resend the school's broadcast.
    for login in ("admin2", "teacher31"):
        other = await world.login(login)
        async with world.client(other) as c:
            refused = await c.post(f"/api/staff/broadcasts/{first}/resend", json={})
            assert refused.status_code == 404
    assert await world.count("SELECT count(*) FROM broadcasts") == 2


async def test_recipients_show_their_accounts_and_filter_by_class_within_rights(
    world: World,
) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        bid = (await c.post("/api/staff/broadcasts", json=body(
            {"schools": [world.orgs["sho1"]]}))).json()["broadcast_id"]
        class31 = (await c.get(f"/api/staff/broadcasts/{bid}/recipients",
                               params={"class_id": world.classes["sho1-3-1"]})).json()
        grade4 = (await c.get(f"/api/staff/broadcasts/{bid}/recipients",
                              params={"grade_id": world.grades["sho1-4"]})).json()
        other = await c.get(f"/api/staff/broadcasts/{bid}/recipients",
                            params={"class_id": world.classes["sho2-3-1"]})
    assert sorted(r["address"] for r in class31["items"]) == [
        "hanako@ezweb.ne.jp", "taro@docomo.ne.jp"
    ]
    taro = next(r for r in class31["items"] if r["address"] == "taro@docomo.ne.jp")
    assert taro["accounts"] == [{
        "id": taro["accounts"][0]["id"], "name": "山田太郎", "school_id": world.orgs["sho1"],
        "grade": 3, "class_name": "1",
    }]
    assert [r["address"] for r in grade4["items"]] == ["ichiro@example.jp"]
    # Filtering by another school's class is counting its people: refused.
    assert other.status_code == 403


async def test_a_failure_whose_sending_was_interrupted_says_it_may_have_arrived(
    world: World,
) -> None:
    token = await world.login("admin1")
    # Expired after a take-over from a runner that stopped holding it (migration 020).
    bid = await grade3_with_jiro_failed(
        world, token, "category = 'expired', reason = 'expired', "
        "last_text = 'not delivered within the maximum age', interrupted = true")
    async with world.client(token) as c:
        status = (await c.get(f"/api/staff/broadcasts/{bid}")).json()
        items = (await c.get(f"/api/staff/broadcasts/{bid}/recipients")).json()["items"]
        r = await c.get(f"/api/staff/broadcasts/{bid}/recipients.csv")
    assert status["may_have_arrived"] == 1
    assert {x["address"]: x["may_have_arrived"] for x in items} == {
        "jiro@softbank.ne.jp": True, "taro@docomo.ne.jp": False, "hanako@ezweb.ne.jp": False}
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][-1] == "備考"
    tls_column = rows[0].index("暗号化 (TLS)")
    assert {row[tls_column] for row in rows[1:]} <= {"あり", "なし", ""}
    assert all("tls" in x for x in items)
    notes = {row[0]: row[-1] for row in rows[1:]}
    assert "届いている可能性" in notes["jiro@softbank.ne.jp"]
    assert notes["taro@docomo.ne.jp"] == ""
