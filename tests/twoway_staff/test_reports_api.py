"""Absence/lateness reports and health notes for staff: settings, list with filters and
paging, CSV with BOM, the "new" badge and its seen mark, and the class teachers' mail."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from typing import Any

from support import wait_until

from engine.twoway import ReportKind
from engine.twoway.notify import send_report_notices

from .conftest import World, deliveries, open_hours, report, report_day


def settings_body(world: World, **extra: Any) -> dict[str, Any]:
    return {**open_hours(world), "reasons": ["発熱", "通院", "家庭の事情"],
            "health_questions": [{"key": "temp", "label": "体温", "kind": "number",
                                  "minimum": 34, "maximum": 43, "unit": "℃"}], **extra}


async def configure(world: World, login: str = "admin1", **extra: Any) -> dict[str, Any]:
    token = await world.login(login)
    async with world.client(token) as c:
        r = await c.put("/api/staff/reports/settings", json=settings_body(world, **extra))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_a_school_administrator_sets_and_reads_the_report_settings(world: World) -> None:
    out = await configure(world)
    assert out["school_id"] == world.orgs["sho1"] and out["reasons"][0] == "発熱"
    assert out["health_questions"][0]["key"] == "temp" and out["notify_teachers"] is False
    token = await world.login("admin1")
    async with world.client(token) as c:
        got = (await c.get("/api/staff/reports/settings")).json()
        bad = await c.put("/api/staff/reports/settings",
                          json=settings_body(world, reasons=["発熱", "発熱"]))
    assert got == out
    assert bad.status_code == 422 and "重複" in bad.json()["message"]
    assert (await world.api.staff.pool.fetchval(
        "SELECT reasons FROM report_settings WHERE school_id = $1", world.orgs["sho1"]
    )) == ["発熱", "通院", "家庭の事情"]


async def test_staff_list_reports_by_day_class_and_kind_and_download_csv(world: World) -> None:
    await configure(world)
    await report(world, "taro@docomo.ne.jp", note="=病院へ行きます")
    await report(world, "hanako@ezweb.ne.jp", ReportKind.LATE, reason="通院")
    await report(world, "jiro@softbank.ne.jp", days=2)
    token = await world.login("admin1")
    async with world.client(token) as c:
        every = (await c.get("/api/staff/reports")).json()
        class31 = (await c.get("/api/staff/reports",
                               params={"class_id": world.classes["sho1-3-1"]})).json()
        late = (await c.get("/api/staff/reports", params={"kind": "late"})).json()
        paged = (await c.get("/api/staff/reports", params={"limit": 1, "offset": 1})).json()
        later = (await c.get("/api/staff/reports", params={
            "first_day": report_day(world, 2).isoformat()})).json()
        got = await c.get("/api/staff/reports.csv")
    assert every["total"] == 3
    assert sorted(r["name"] for r in class31["items"]) == ["山田太郎", "山田花子"]
    assert [(r["name"], r["kind_label_ja"], r["reason"]) for r in late["items"]] == [
        ("山田花子", "遅刻", "通院")]
    assert paged["total"] == 3 and len(paged["items"]) == 1
    assert [r["name"] for r in later["items"]] == ["佐藤次郎"]
    assert got.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["種別", "開始日", "終了日"] and len(rows) == 4
    assert "'=病院へ行きます" in [cell for row in rows for cell in row]


async def test_the_new_report_count_follows_what_each_staff_member_has_seen(
    world: World,
) -> None:
    await configure(world)
    await report(world, "taro@docomo.ne.jp")
    await report(world, "jiro@softbank.ne.jp")
    admin = await world.login("admin1")
    teacher = await world.login("teacher31")
    async with world.client(admin) as a, world.client(teacher) as t:
        assert (await a.get("/api/staff/reports/new")).json()["new"] == 2
        # The teacher counts their class (3-1) only.
        assert (await t.get("/api/staff/reports/new")).json()["new"] == 1
        seen = await a.post("/api/staff/reports/seen")
        assert seen.status_code == 200 and seen.json()["new"] == 0
        world.clock.advance(60)
        await report(world, "hanako@ezweb.ne.jp")
        assert (await a.get("/api/staff/reports/new")).json()["new"] == 1
        assert (await t.get("/api/staff/reports/new")).json()["new"] == 2


async def test_class_teachers_are_mailed_counts_of_new_reports_without_names(
    world: World,
) -> None:
    await configure(world, notify_teachers=True)
    teacher = await world.login("teacher31")
    async with world.client(teacher) as t:
        r = await t.put("/api/staff/reports/notify-address",
                        json={"address": "sensei31@example.jp"})
    assert r.status_code == 200 and r.json()["has_address"] is True
    world.clock.advance(1)
    await report(world, "taro@docomo.ne.jp", note="熱が38度あります")
    await report(world, "hanako@ezweb.ne.jp")
    await report(world, "jiro@softbank.ne.jp")  # class 3-2: no teacher with an address
    world.clock.advance(1)
    api = world.api
    # The notice goes out from the deployment's registration sender.
    settings = replace(world.settings, people=replace(
        world.settings.people, registration_address="entry@example.jp"))
    assert await send_report_notices(api.people, api.queue, settings, world.clock.now()) == 1
    rows = await api.staff.pool.fetch(
        "SELECT b.id, b.subject, b.body FROM broadcasts b JOIN deliveries d "
        "ON d.broadcast_id = b.id WHERE d.recipient_hash = $1",
        api.people.sealer.address_hash("sensei31@example.jp"),
    )
    [mail] = rows
    assert "2 件" in mail["subject"] and "3年1組: 2 件" in mail["body"]
    for secret in ("山田", "太郎", "発熱", "38度"):
        assert secret not in mail["body"] and secret not in mail["subject"]
    # Without [http] public_url, no link, only where to look.
    assert "http" not in mail["body"] and "管理画面" in mail["body"]
    assert list(await deliveries(world, mail["id"])) == ["sensei31@example.jp"]
    # Nothing new: no second mail.
    world.clock.advance(60)
    assert await send_report_notices(api.people, api.queue, settings, world.clock.now()) == 0
    # With it, the mail links to the screens' report list.
    world.clock.advance(1)
    await report(world, "taro@docomo.ne.jp", note="訂正")
    world.clock.advance(1)
    linked = replace(settings, http=replace(settings.http,
                                            public_url="https://mail.city.example.jp"))
    assert await send_report_notices(api.people, api.queue, linked, world.clock.now()) == 1
    body = await api.staff.pool.fetchval(
        "SELECT body FROM broadcasts WHERE subject LIKE '【連絡】%' ORDER BY id DESC LIMIT 1")
    assert "https://mail.city.example.jp/staff/reports\n" in body


async def _one_report_for_a_teacher_with_an_address(world: World) -> None:
    await configure(world, notify_teachers=True)
    teacher = await world.login("teacher31")
    async with world.client(teacher) as t:
        r = await t.put("/api/staff/reports/notify-address",
                        json={"address": "sensei31@example.jp"})
    assert r.status_code == 200
    world.clock.advance(1)
    await report(world, "taro@docomo.ne.jp")
    world.clock.advance(1)


async def test_two_hosts_running_the_notices_at_once_mail_the_teacher_once(
    world: World,
) -> None:
    await _one_report_for_a_teacher_with_an_address(world)
    api = world.api
    settings = replace(world.settings, people=replace(
        world.settings.people, registration_address="entry@example.jp"))
    now = world.clock.now()
    sent = await asyncio.gather(*(send_report_notices(api.people, api.queue, settings, now)
                                  for _ in range(2)))
    assert sorted(sent) == [0, 1]


async def test_serve_minute_task_mails_the_teacher(world: World) -> None:
    from cli.services import Reminders
    from engine.delivery.context import Engine

    await _one_report_for_a_teacher_with_an_address(world)
    settings = replace(world.settings, people=replace(
        world.settings.people, registration_address="entry@example.jp"))
    eng = await Engine.open(settings, world.clock)
    try:
        task = Reminders(eng, interval=0.02)
        await task.start()
        try:
            async def mailed() -> bool:
                return bool(await world.count(
                    "SELECT count(*) FROM deliveries WHERE recipient_hash = $1",
                    world.api.people.sealer.address_hash("sensei31@example.jp")))

            await wait_until(mailed, timeout=5)
        finally:
            await task.stop()
        # The one report was announced once.
        assert await world.count(
            "SELECT count(*) FROM broadcasts WHERE subject LIKE '【連絡】%'") == 1
    finally:
        await eng.close()
