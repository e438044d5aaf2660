"""Read confirmation and surveys through the staff API: asked for at creation, followed live
per class and per account, totals, answers and their CSV, reminders to those who have not
read or answered, replies; bad input refused with nothing stored."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from engine.twoway import store_reply
from engine.twoway.personal import open_page
from engine.twoway.reminders import INTRO, SUBJECT_MARK

from .conftest import (
    World,
    answer,
    asking_body,
    create,
    deliver_all,
    deliveries,
    read,
)


async def test_a_broadcast_asking_for_reads_and_answers_links_to_the_personal_page(
    world: World,
) -> None:
    b = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]}, world))
    pool = world.api.staff.pool
    assert await pool.fetchval("SELECT personal_page FROM broadcasts WHERE id = $1", b) is True
    rr = await pool.fetchrow("SELECT * FROM read_requests WHERE broadcast_id = $1", b)
    assert rr["remind_after"] == timedelta(minutes=120) and rr["max_reminders"] == 2
    assert await world.count("SELECT count(*) FROM surveys WHERE broadcast_id = $1", b) == 1
    # Linked at creation: four children of sho1, each reached by its guardian's address.
    assert await world.count(
        "SELECT count(DISTINCT account_id) FROM delivery_accounts WHERE broadcast_id = $1", b
    ) == 4
    # A plain broadcast stays without the page.
    plain = await create(world, "admin1", {
        "sender": "sho1@example.jp", "subject": "お知らせ", "body": "本文",
        "audience": {"schools": [world.orgs["sho1"]]},
    })
    assert await pool.fetchval("SELECT personal_page FROM broadcasts WHERE id = $1", plain) is False


async def test_staff_see_who_has_read_per_class_and_per_account_live(world: World) -> None:
    b = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]}, world))
    await deliver_all(world)
    d = await deliveries(world, b)
    token = await world.login("admin1")
    async with world.client(token) as c:
        before = (await c.get(f"/api/staff/broadcasts/{b}/reads")).json()
        await read(world, d["taro@docomo.ne.jp"])
        await read(world, d["jiro@softbank.ne.jp"])
        after = (await c.get(f"/api/staff/broadcasts/{b}/reads")).json()
        unread31 = (await c.get(f"/api/staff/broadcasts/{b}/reads/accounts", params={
            "read": "false", "class_id": world.classes["sho1-3-1"]})).json()
        read_all = (await c.get(f"/api/staff/broadcasts/{b}/reads/accounts",
                                params={"read": "true"})).json()
        grade4 = (await c.get(f"/api/staff/broadcasts/{b}/reads/accounts",
                              params={"grade_id": world.grades["sho1-4"]})).json()
    assert (before["accounts"], before["read"], before["unread"]) == (4, 0, 4)
    assert (after["accounts"], after["read"], after["unread"]) == (4, 2, 2)
    per_class = {(c["grade"], c["class_name"]): (c["accounts"], c["read"])
                 for c in after["classes"]}
    assert per_class == {(3, "1"): (2, 1), (3, "2"): (1, 1), (4, "1"): (1, 0)}
    assert [a["name"] for a in unread31["items"]] == ["山田花子"] and unread31["total"] == 1
    assert sorted(a["name"] for a in read_all["items"]) == ["佐藤次郎", "山田太郎"]
    assert all(a["read_at"] is not None for a in read_all["items"])
    assert [a["name"] for a in grade4["items"]] == ["鈴木一郎"]


async def test_survey_totals_answers_and_csv_with_bom(world: World) -> None:
    b = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]}, world))
    await deliver_all(world)
    d = await deliveries(world, b)
    await answer(world, d["taro@docomo.ne.jp"], {"attend": "0", "people": "2", "note": "=1+1"})
    await answer(world, d["hanako@ezweb.ne.jp"], {"attend": "0", "people": "3"})
    await answer(world, d["jiro@softbank.ne.jp"], {"attend": "1"})
    token = await world.login("admin1")
    async with world.client(token) as c:
        totals = (await c.get(f"/api/staff/broadcasts/{b}/survey")).json()
        page1 = (await c.get(f"/api/staff/broadcasts/{b}/survey/answers",
                             params={"limit": 2})).json()
        page2 = (await c.get(f"/api/staff/broadcasts/{b}/survey/answers",
                             params={"limit": 2, "offset": 2})).json()
        got = await c.get(f"/api/staff/broadcasts/{b}/survey/answers.csv")
    assert totals["respondents"] == 3
    q = {t["question"]["key"]: t for t in totals["questions"]}
    assert q["attend"]["options"] == [2, 1] and q["attend"]["answered"] == 3
    assert float(q["people"]["total"]) == 5 and q["people"]["answered"] == 2
    assert page1["total"] == 3 and len(page1["items"]) == 2 and len(page2["items"]) == 1
    taro = next(r for r in page1["items"] + page2["items"] if r["name"] == "山田太郎")
    assert taro["answers"] == {"attend": "参加", "people": "2", "note": "=1+1"}
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["学年", "組", "番号", "氏名", "回答日時"]
    assert ["3", "1", "1", "山田太郎"] == rows[1][:4] and rows[1][-1] == "'=1+1"
    assert await world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'twoway.answers_csv' AND result = 'ok'"
    ) == 1


async def test_a_reminder_goes_to_those_who_have_not_answered_and_counts_for_the_first(
    world: World,
) -> None:
    b = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]}, world))
    await deliver_all(world)
    d = await deliveries(world, b)
    await answer(world, d["taro@docomo.ne.jp"], {"attend": "0"})
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.post(f"/api/staff/broadcasts/{b}/remind", json={"purpose": "survey"})
        assert r.status_code == 201, r.text
        made = r.json()
        status = (await c.get(made["status_url"])).json()
    pool = world.api.staff.pool
    reminder = made["broadcast_id"]
    sent = await deliveries(world, reminder)
    assert sorted(sent) == ["hanako@ezweb.ne.jp", "ichiro@example.jp", "jiro@softbank.ne.jp"]
    assert made["recipients"] == 3 and made["left"] == 0
    assert status["broadcast"]["resend_of"] == b
    assert status["broadcast"]["subject"] == "【回答のお願い】遠足のお知らせ"
    assert await pool.fetchval(
        "SELECT personal_page FROM broadcasts WHERE id = $1", reminder) is True
    # The reminder's page is the first mail's page: an answer through it counts there.
    people = world.api.people
    for address, delivery in sent.items():
        view = await open_page(people, delivery)
        assert view is not None and view.delivery_id == d[address] and view.broadcast_id == b
    view = await open_page(people, d["taro@docomo.ne.jp"])
    assert view is not None and view.delivery_id == d["taro@docomo.ne.jp"]
    assert await world.count(
        "SELECT count(*) FROM delivery_reminders WHERE broadcast_id = $1 AND purpose = 'survey' "
        "AND reminders = 1", b) == 3
    # Everyone answers: nobody left to remind, nothing sent.
    for address in sent:
        await answer(world, d[address], {"attend": "1"})
    before = await world.count("SELECT count(*) FROM broadcasts")
    async with world.client(token) as c:
        again = await c.post(f"/api/staff/broadcasts/{b}/remind", json={"purpose": "survey"})
    assert again.status_code == 422 and "再通知する宛先がありません" in again.json()["message"]
    assert await world.count("SELECT count(*) FROM broadcasts") == before


async def test_a_read_reminder_skips_those_who_read(world: World) -> None:
    b = await create(world, "admin1", asking_body({"classes": [world.classes["sho1-3-1"]]},
                                                  world))
    await deliver_all(world)
    d = await deliveries(world, b)
    await read(world, d["taro@docomo.ne.jp"])
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.post(f"/api/staff/broadcasts/{b}/remind", json={"purpose": "read"})
    assert r.status_code == 201, r.text
    reminder = r.json()["broadcast_id"]
    sent = await deliveries(world, reminder)
    assert sorted(sent) == ["hanako@ezweb.ne.jp"]
    # Worded as the automatic reminder, so a guardian gets one kind of reminder whoever sent it.
    subject, body = await world.api.staff.pool.fetchrow(
        "SELECT subject, body FROM broadcasts WHERE id = $1", reminder)
    original = await world.api.staff.pool.fetchval(
        "SELECT subject FROM broadcasts WHERE id = $1", b)
    assert subject == SUBJECT_MARK + original and body.startswith(INTRO)
    # Made like the minute task's reminders (Asks(reminder=ReminderOf(...))): recorded as a
    # reminder of the first broadcast, counted, and a read through its page counts there.
    assert await world.count(
        "SELECT count(*) FROM reminder_broadcasts WHERE broadcast_id = $1 AND original_id = $2",
        reminder, b) == 1
    assert await world.count(
        "SELECT count(*) FROM delivery_reminders WHERE broadcast_id = $1 AND purpose = 'read' "
        "AND reminders = 1", b) == 1
    view = await open_page(world.api.people, sent["hanako@ezweb.ne.jp"])
    assert view is not None and view.delivery_id == d["hanako@ezweb.ne.jp"]
    await read(world, view.delivery_id)
    assert await world.count(
        "SELECT count(*) FROM delivery_reads WHERE broadcast_id = $1", b) == 2


async def test_replies_are_shown_with_their_broadcast_as_plain_json_text(world: World) -> None:
    b = await create(world, "admin1", asking_body({"classes": [world.classes["sho1-3-1"]]},
                                                  world))
    await deliver_all(world)
    d = await deliveries(world, b)
    secret = b"s" * 32
    from engine.message.compose import build_template
    from engine.queue import BroadcastContent, Priority

    mid = build_template(
        BroadcastContent(b, "sho1@example.jp", "件名", "本文", Priority.NORMAL), world.clock,
        secret=secret,
    ).message_id(d["hanako@ezweb.ne.jp"])
    await store_reply(world.api.people, secret, mid, "hanako@ezweb.ne.jp", "Re: 遠足",
                      "<script>alert(1)</script> 欠席します")
    token = await world.login("admin1")
    async with world.client(token) as c:
        r = await c.get(f"/api/staff/broadcasts/{b}/replies")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    [reply] = r.json()["items"]
    assert reply["body"] == "<script>alert(1)</script> 欠席します"
    assert reply["from_recipient"] is True and reply["delivery_id"] == d["hanako@ezweb.ne.jp"]


async def test_bad_two_way_input_is_refused_and_stores_nothing(world: World) -> None:
    token = await world.login("admin1")
    aud = {"schools": [world.orgs["sho1"]]}
    past = (world.clock.now() - timedelta(hours=1)).isoformat()
    cases = {
        "no deadline": asking_body(aud, world, answer_deadline=None),
        "past deadline": asking_body(aud, world, answer_deadline=past),
        "bad key": asking_body(aud, world, questions=[
            {"key": "Bad Key", "label": "q", "kind": "text"}]),
        "one option": asking_body(aud, world, questions=[
            {"key": "a", "label": "q", "kind": "single", "options": ["only"]}]),
        "too many reminders": asking_body(
            aud, world, read_confirmation={"remind_after_minutes": 10, "max_reminders": 11}),
    }
    async with world.client(token) as c:
        for name, body in cases.items():
            r = await c.post("/api/staff/broadcasts", json=body)
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error"] == "invalid", name
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
    assert await world.count("SELECT count(*) FROM surveys") == 0


async def test_an_application_asks_for_answers_and_a_retry_with_other_questions_conflicts(
    world: World,
) -> None:
    token = await world.login("board")
    async with world.client(token) as c:
        key = (await c.post("/api/staff/api-keys", json={
            "name": "sho1 アンケート連携", "organisation_id": world.orgs["sho1"]})).json()["key"]
    payload = asking_body({"classes": [world.classes["sho1-3-1"]]}, world)
    headers = {"Idempotency-Key": "survey-0001"}
    async with world.client(key) as c:
        first = await c.post("/api/apps/broadcasts", json=payload, headers=headers)
        retry = await c.post("/api/apps/broadcasts", json=payload, headers=headers)
        other = await c.post("/api/apps/broadcasts", headers=headers, json={
            **payload, "questions": payload["questions"][:1]})
    assert first.status_code == 201, first.text
    assert retry.status_code == 200 and retry.json()["replayed"] is True
    assert other.status_code == 409
    assert await world.count("SELECT count(*) FROM surveys") == 1
    assert await world.count("SELECT count(*) FROM read_requests") == 1


async def test_recipients_filter_unread_and_unanswered(world: World) -> None:
    b = await create(world, "admin1", asking_body({"schools": [world.orgs["sho1"]]}, world))
    await deliver_all(world)
    d = await deliveries(world, b)
    await read(world, d["taro@docomo.ne.jp"])
    await answer(world, d["taro@docomo.ne.jp"], {"attend": "0", "people": "2"})
    await answer(world, d["jiro@softbank.ne.jp"], {"attend": "1"})
    token = await world.login("admin1")
    async with world.client(token) as c:
        url = f"/api/staff/broadcasts/{b}/recipients"
        every = (await c.get(url)).json()
        unread = (await c.get(url, params={"unread": "true"})).json()
        unanswered = (await c.get(url, params={"unanswered": "true"})).json()
        both = await c.get(f"{url}.csv", params={"unread": "true", "unanswered": "true"})
    everyone = {r["address"] for r in every["items"]}
    assert {r["address"] for r in unread["items"]} == everyone - {"taro@docomo.ne.jp"}
    assert {r["address"] for r in unanswered["items"]} == everyone - {
        "taro@docomo.ne.jp", "jiro@softbank.ne.jp"
    }
    text = both.content.decode("utf-8-sig")
    assert "jiro@softbank.ne.jp" not in text and "taro@docomo.ne.jp" not in text
    assert unanswered["total"] == len(everyone) - 2
