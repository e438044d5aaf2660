"""The issue's end-to-end for absence reports: a report posted by one contact → a confirmation
to every contact of the child; correction and withdrawal the same; another family's link
changes nothing; outside the school's hours the page says when, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import re
from datetime import time, timedelta
from decimal import Decimal

import pytest
from support import wait_until

from engine.people import Audience, Category
from engine.queue import NewBroadcast
from engine.twoway import (
    Question,
    QuestionKind,
    ReportFilter,
    ReportKind,
    list_reports,
    send_broadcast,
    set_report_settings,
)
from engine.twoway.asks import Asks, ReadPolicy

from .conftest import Serve, body_text, link_in

pytestmark = pytest.mark.slow


async def _report_link(serve: Serve, guardian: str, account: int) -> str:
    """The report page's link, as a guardian reaches it: from the personal page of a mail."""
    subject = f"お知らせ {account}"
    await send_broadcast(
        serve.people, serve.engine.queue,
        NewBroadcast("sho1@city.example.jp", subject, "本文\n", []),
        Audience(accounts=(account,)), Category.NOTICE, 86400, asks=Asks(read=ReadPolicy()),
    )
    await wait_until(lambda: serve.mails(guardian, subject), timeout=15)
    page = await serve.http.get(link_in(serve.mails(guardian, subject)[0], "/m/"))
    m = re.search(r'href="(/report/[0-9A-Za-z._-]+)"', page.text)
    assert m is not None, page.text
    return m.group(1)


async def _reports(serve: Serve, withdrawn: bool = False) -> list[tuple[str, str]]:
    page = await list_reports(serve.people, await serve.school("sho1"),
                              ReportFilter(include_withdrawn=withdrawn))
    return [(r.kind.value, r.state) for r in page.reports]


async def test_absence_report_confirmed_to_every_contact(serve: Serve) -> None:
    # 08:00-11:00 Japan time; the clock says 10:00.
    await set_report_settings(
        serve.people, await serve.school("sho1"), time(8, 0), time(11, 0), ["発熱", "通院"],
        [Question("temp", "体温", QuestionKind.NUMBER, required=True, minimum=Decimal(34),
                  maximum=Decimal(43), unit="℃")],
    )
    taro = await serve.account("山田太郎")
    hanako = await serve.account("佐藤花子")
    link = await _report_link(serve, "papa@docomo.ne.jp", taro)
    today = "2026-11-24"

    page = await serve.http.get(link)
    assert page.status_code == 200 and "山田太郎さん（第一小学校）" in page.text
    assert "発熱" in page.text and "体温" in page.text and "佐藤花子" not in page.text

    made = await serve.http.post(link, data={
        "_child": str(taro), "_kind": "absence", "_first": today, "_last": "",
        "_reason": "発熱", "_note": "<b>熱が 38 度</b>",
    })
    assert made.status_code == 200 and "欠席連絡を受け付けました" in made.text
    assert "&lt;b&gt;熱が 38 度&lt;/b&gt;" in made.text
    # Both of 太郎's guardians are told, the one who reported and the other; nobody else.
    both = ["papa@docomo.ne.jp", "mama@ezweb.ne.jp"]
    await wait_until(lambda: all(serve.mails(g, "【欠席連絡】") for g in both), timeout=15)
    told = body_text(serve.mails("mama@ezweb.ne.jp", "【欠席連絡】")[0])
    assert "山田太郎さんの欠席連絡を受け付けました" in told and "11月24日(火)" in told
    assert serve.mails("hanako@docomo.ne.jp", "【欠席連絡】") == []
    assert await _reports(serve) == [("absence", "active")]

    # A health note with the school's question: a temperature out of range is refused.
    bad = await serve.http.post(link, data={
        "_child": str(taro), "_kind": "health", "_first": today, "temp": "50"})
    assert bad.status_code == 400 and "範囲" in bad.text
    assert len(await _reports(serve)) == 1
    health = await serve.http.post(link, data={
        "_child": str(taro), "_kind": "health", "_first": today, "temp": "３７．２"})
    assert health.status_code == 200 and "健康連絡を受け付けました" in health.text
    await wait_until(lambda: all(serve.mails(g, "【健康連絡】") for g in both), timeout=15)
    page = await list_reports(serve.people, await serve.school("sho1"),
                              ReportFilter(kind=ReportKind.HEALTH))
    assert [r.answers for r in page.reports] == [{"temp": Decimal("37.2")}]
    # Withdrawn again: the absence is what the rest corrects and withdraws.
    await serve.http.post(f"{link}/{page.reports[0].id}/withdraw")

    # Corrected (now lateness) and then withdrawn: each time both guardians hear of it.
    report_id = re.search(r"/report/[^\"]+/(\d+)/withdraw", made.text)
    assert report_id is not None
    fixed = await serve.http.post(link, data={
        "_child": str(taro), "_report": report_id.group(1), "_kind": "late",
        "_first": today, "_last": today, "_reason": "通院", "_note": "",
        "_time": "10:30"})
    assert fixed.status_code == 200 and "遅刻連絡を訂正しました" in fixed.text
    await wait_until(lambda: all(serve.mails(g, "【遅刻連絡】") for g in both), timeout=15)

    # Another family's link cannot touch 太郎's report.
    other = await _report_link(serve, "hanako@docomo.ne.jp", hanako)
    stranger = await serve.http.post(f"{other}/{report_id.group(1)}/withdraw")
    assert stranger.status_code == 400 and "見つからないか" in stranger.text
    posing = await serve.http.post(other, data={
        "_child": str(taro), "_kind": "absence", "_first": today, "_reason": "発熱"})
    assert posing.status_code == 400 and "連絡できません" in posing.text
    assert await _reports(serve) == [("late", "active")]

    gone = await serve.http.post(f"{link}/{report_id.group(1)}/withdraw")
    assert gone.status_code == 200 and "取り消しました" in gone.text
    await wait_until(
        lambda: all(serve.mails(g, "【遅刻連絡】山田太郎さんの連絡を取り消しました") for g in both),
        timeout=15)
    assert sorted(await _reports(serve, withdrawn=True)) == [
        ("health", "withdrawn"), ("late", "withdrawn")]

    # 12:00: outside the hours. Said plainly, with the hours; nothing stored.
    serve.clock.advance(timedelta(hours=2).total_seconds())
    closed = await serve.http.post(link, data={
        "_child": str(taro), "_kind": "absence", "_first": today, "_reason": "発熱"})
    assert closed.status_code == 403
    assert "08:00〜11:00 に受け付けています。いまは受付時間外です" in closed.text
    assert await _reports(serve) == []


async def test_forged_report_links_are_refused_and_then_slowed(serve: Serve) -> None:
    forged = "/report/1.zzzzzzz.AAAAAAAAAAAAAAAAAAAAAA"
    answers = [(await serve.http.get(forged)).status_code for _ in range(5)]
    # Three free (people mistype), then the network waits, as with registration codes.
    assert answers[:4] == [400, 400, 400, 400] and answers[4] == 429


async def _empty_mail(port: int, sender: str, to: str) -> None:
    """An empty mail as a phone sends it, with a real SMTP client (swaks)."""
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--to", to, "--from", sender, "--server", "127.0.0.1", "--port", str(port),
        "--data", "Date: %DATE%\nTo: %TO_ADDRESS%\nFrom: %FROM_ADDRESS%\nSubject: \n\n",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0 and b"<-  250 2.0.0 OK" in out, out.decode()


async def test_an_empty_mail_to_the_report_address_brings_the_page_link(serve: Serve) -> None:
    await set_report_settings(
        serve.people, await serve.school("sho1"), time(8, 0), time(11, 0), ["発熱"])
    # A stranger, and a guardian whose school (sho2) takes no reports: not answered.
    await _empty_mail(serve.smtp_port, "nobody@example.jp", "report@city.example.jp")
    await _empty_mail(serve.smtp_port, "saburo@example.jp", "Report@City.example.jp")
    await _empty_mail(serve.smtp_port, "papa@docomo.ne.jp", "report@city.example.jp")
    await wait_until(lambda: serve.mails("papa@docomo.ne.jp", "【連絡用】"), timeout=15)
    link = link_in(serve.mails("papa@docomo.ne.jp", "【連絡用】")[0], "/report/")
    page = await serve.http.get(link)
    assert page.status_code == 200 and "山田太郎さん（第一小学校）" in page.text
    assert serve.mails("nobody@example.jp") == [] and serve.mails("saburo@example.jp") == []
    # Nothing was even queued for them (the replies are queued before swaks hears 250).
    queued = await serve.people.pool.fetchval(
        "SELECT count(*) FROM broadcasts WHERE subject LIKE '【連絡用】%'")
    assert queued == 1


async def test_every_mail_s_foot_link_leads_to_the_report_page(serve: Serve) -> None:
    """A mail that asks nothing has no personal page, but its settings link (the foot of every
    mail) is the standing way to the report page of a school that takes reports."""
    await set_report_settings(
        serve.people, await serve.school("sho1"), time(8, 0), time(11, 0), ["発熱"], [],
    )
    account = await serve.account("山田太郎")
    await send_broadcast(
        serve.people, serve.engine.queue,
        NewBroadcast("sho1@city.example.jp", "ふつうのお知らせ", "本文\n", []),
        Audience(accounts=(account,)), Category.NOTICE, 86400,
    )
    await wait_until(lambda: serve.mails("papa@docomo.ne.jp", "ふつうのお知らせ"), timeout=15)
    mail = serve.mails("papa@docomo.ne.jp", "ふつうのお知らせ")[0]
    assert "/m/" not in body_text(mail)
    settings_page = await serve.http.get(link_in(mail, "/u/"))
    m = re.search(r'href="(/report/[0-9A-Za-z._-]+)"', settings_page.text)
    assert m is not None, settings_page.text
    report = await serve.http.get(m.group(1))
    assert report.status_code == 200 and "欠席" in report.text
