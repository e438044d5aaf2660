"""The settings page over HTTP (no browser): each group's real state, only the family's
schools' and board's groups, stopping through a confirmation whose default keeps emergencies,
再開する on every result page, and a completion mail at the sink after every change."""

from __future__ import annotations

from support import wait_until

from engine.people.models import Audience, Category, SkipReason
from engine.queue import Priority

from .conftest import MAMA, PAPA, Settings, checked_groups

PTA1 = "PTA（第一小学校）"


async def test_pta_from_the_csv_shows_checked_and_unchecking_it_stops_pta_mail(
    gs: Settings,
) -> None:
    link = await gs.link()
    page = await gs.http.get(link)
    assert page.status_code == 200
    assert checked_groups(page.text) == {
        "防犯メール（みどり市教育委員会）": False,
        PTA1: True,
        "図書ボランティア（第一小学校）": False,
    }
    assert "第二小学校" not in page.text  # another school's PTA is never offered

    pta = Audience(groups=(gs.groups["pta1"],))
    assert set((await gs.reached(pta)).recipients) == {PAPA, MAMA}
    # Unchecked PTA, checked 防犯メール.
    r = await gs.http.post(f"{link}/groups", data={"group": [str(gs.groups["safety"])]})
    assert r.status_code == 200 and "受け取るグループを変更しました" in r.text
    assert checked_groups(r.text) == {
        "防犯メール（みどり市教育委員会）": True, PTA1: False,
        "図書ボランティア（第一小学校）": False,
    }
    # PTA mail no longer reaches papa; mama (the child's other guardian) still gets it.
    assert set((await gs.reached(pta)).recipients) == {MAMA}
    # Mail to the school still reaches papa: a group choice never hides the school's mail.
    school = await gs.people.pool.fetchval("SELECT id FROM organisations WHERE code = 'sho1'")
    assert PAPA in (await gs.reached(Audience(schools=(school,)))).recipients
    safety = Audience(groups=(gs.groups["safety"],))
    assert set((await gs.reached(safety)).recipients) == {PAPA}

    await wait_until(lambda: gs.mails(PAPA, "設定変更完了"), timeout=10)
    body = gs.mails(PAPA, "設定変更完了")[0]
    assert f"受け取らない: {PTA1}" in body and "受け取る: 防犯メール" in body

    # Checking it again undoes the opt-out.
    r = await gs.http.post(f"{link}/groups", data={"group": [str(gs.groups["pta1"])]})
    assert checked_groups(r.text)[PTA1] is True
    assert set((await gs.reached(pta)).recipients) == {PAPA, MAMA}
    assert set((await gs.reached(safety)).recipients) == set()
    await wait_until(lambda: len(gs.mails(PAPA, "設定変更完了")) == 2, timeout=10)


async def test_another_schools_group_is_refused_and_nothing_changes(gs: Settings) -> None:
    link = await gs.link()
    r = await gs.http.post(
        f"{link}/groups", data={"group": [str(gs.groups["pta1"]), str(gs.groups["pta2"])]}
    )
    assert r.status_code == 400 and "選べないグループ" in r.text
    assert await gs.people.pool.fetchval("SELECT count(*) FROM contact_groups") == 0
    assert await gs.people.pool.fetchval("SELECT count(*) FROM contact_group_optouts") == 0
    tampered = await gs.http.post(f"{link}/groups", data={"group": ["1; DROP"]})
    assert tampered.status_code == 400
    # Saving what is shown changes nothing and mails nothing.
    same = await gs.http.post(f"{link}/groups", data={"group": [str(gs.groups["pta1"])]})
    assert same.status_code == 200 and "変更はありませんでした" in same.text
    assert await gs.people.pool.fetchval(
        "SELECT count(*) FROM broadcasts WHERE subject LIKE '【設定変更完了】%'") == 0


async def test_stopping_needs_a_confirmation_whose_default_keeps_emergencies(
    gs: Settings,
) -> None:
    link = await gs.link()
    page = await gs.http.get(link)
    # The page's button only opens the confirmation: nothing is stopped in one tap.
    assert f'<form method="get" action="{link}/stop">' in page.text
    confirm = await gs.http.get(f"{link}/stop")
    assert confirm.status_code == 200
    assert "緊急のお知らせ（休校・不審者・災害など）も届かなくなります" in confirm.text
    radios = confirm.text.split('name="mode"')
    assert 'value="emergency" checked> 緊急連絡だけは受け取る' in radios[1]  # first, selected
    assert 'value="all">' in radios[2]
    assert (await gs.contact())["state"] == "active"

    done = await gs.http.post(f"{link}/stop", data={"mode": "emergency"})
    assert done.status_code == 200 and "緊急連絡だけを受け取るように変更しました" in done.text
    assert f'action="{link}/rejoin"' in done.text and "再開する" in done.text
    row = await gs.contact()
    assert row["state"] == "active" and row["emergency_only"] is True
    school = await gs.people.pool.fetchval("SELECT id FROM organisations WHERE code = 'sho1'")
    notice = await gs.reached(Audience(schools=(school,)))
    assert PAPA not in notice.recipients and MAMA in notice.recipients
    assert notice.skipped == {SkipReason.EMERGENCY_ONLY: 1}
    for category, priority in ((Category.EMERGENCY, Priority.NORMAL),
                               (Category.NOTICE, Priority.EMERGENCY)):
        urgent = await gs.reached(Audience(schools=(school,)), category, priority)
        assert PAPA in urgent.recipients
    await wait_until(lambda: gs.mails(PAPA, "設定変更完了"), timeout=10)
    assert "緊急連絡だけを受け取る" in gs.mails(PAPA, "設定変更完了")[0]

    resumed = await gs.http.post(f"{link}/rejoin")
    assert resumed.status_code == 200 and "配信を再開しました" in resumed.text
    assert (await gs.contact())["emergency_only"] is False
    assert PAPA in (await gs.reached(Audience(schools=(school,)))).recipients
    await wait_until(lambda: len(gs.mails(PAPA, "設定変更完了")) == 2, timeout=10)


async def test_stopping_everything_is_a_choice_and_resumes_from_the_result_page(
    gs: Settings,
) -> None:
    link = await gs.link()
    nothing = await gs.http.post(f"{link}/stop", data={"mode": "bogus"})
    assert nothing.status_code == 400 and "何も変更していません" in nothing.text
    assert (await gs.contact())["state"] == "active"

    done = await gs.http.post(f"{link}/stop", data={"mode": "all"})
    assert done.status_code == 200 and "緊急のお知らせも届きません" in done.text
    assert f'action="{link}/rejoin"' in done.text
    assert (await gs.contact())["state"] == "left"
    school = await gs.people.pool.fetchval("SELECT id FROM organisations WHERE code = 'sho1'")
    emergency = await gs.reached(Audience(schools=(school,)), Category.EMERGENCY)
    assert PAPA not in emergency.recipients
    await wait_until(lambda: gs.mails(PAPA, "設定変更完了"), timeout=10)
    assert "停止しました" in gs.mails(PAPA, "設定変更完了")[0]

    resumed = await gs.http.post(f"{link}/rejoin")
    assert "配信を再開しました" in resumed.text
    assert (await gs.contact())["state"] == "active"
    await wait_until(lambda: len(gs.mails(PAPA, "設定変更完了")) == 2, timeout=10)


async def test_forged_links_change_nothing(gs: Settings) -> None:
    link = await gs.link()
    for path in ("/stop", "/groups", "/rejoin", ""):
        r = await gs.http.post(f"{link[:-3]}xyz{path}", data={"mode": "all"})
        assert r.status_code == 400
    assert (await gs.contact())["state"] == "active"
