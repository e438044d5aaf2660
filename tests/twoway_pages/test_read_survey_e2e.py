"""The issue's end-to-end for read confirmation and surveys: a broadcast asking for both →
links opened → answers posted, changed before the deadline and refused after it → reminders
go only to those who have not read, and a reminder's link records the read of the first mail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from support import wait_until

from engine.people import Audience, Category
from engine.platform.clock import jst
from engine.queue import NewBroadcast
from engine.twoway import Question, QuestionKind, send_broadcast, survey_totals
from engine.twoway.asks import Asks, ReadPolicy
from engine.twoway.reminders import SUBJECT_MARK, send_due_reminders

from .conftest import Serve, link_in

pytestmark = pytest.mark.slow

QUESTIONS = (
    Question("attend", "懇談会に出席しますか", QuestionKind.SINGLE, required=True,
             options=("出席", "欠席")),
    Question("people", "出席する人数", QuestionKind.NUMBER, minimum=Decimal(0),
             maximum=Decimal(5), unit="人"),
    Question("note", "ご意見", QuestionKind.TEXT),
)
SUBJECT = "懇談会のお知らせ"


async def _send(serve: Serve) -> int:
    now = serve.clock.now()
    fan = await send_broadcast(
        serve.people, serve.engine.queue,
        NewBroadcast("sho1@city.example.jp", SUBJECT, "懇談会を開きます。\n", []),
        Audience(schools=(await serve.school("sho1"),)), Category.SCHOOL_EVENT, 86400,
        asks=Asks(read=ReadPolicy(timedelta(hours=1), 2), questions=QUESTIONS,
                  deadline=now + timedelta(hours=1)),
    )
    assert fan.recipients == 4
    return fan.broadcast_id


def _next_daytime(after: datetime) -> datetime:
    """10:00 Japan time on the first day it is later than ``after`` (reminders wait out the
    night)."""
    day = jst(after).replace(hour=10, minute=0, second=0, microsecond=0)
    while day <= after:
        day += timedelta(days=1)
    return day.astimezone(UTC)


async def test_read_answers_deadline_and_reminders(serve: Serve) -> None:
    b = await _send(serve)
    guardians = ["papa@docomo.ne.jp", "mama@ezweb.ne.jp", "hanako@docomo.ne.jp",
                 "ichiro@softbank.ne.jp"]
    await wait_until(lambda: all(serve.mails(g, SUBJECT) for g in guardians), timeout=15)
    link = {g: link_in(serve.mails(g, SUBJECT)[0], "/m/") for g in guardians}
    http = serve.http
    taro = await serve.account("山田太郎")
    hanako = await serve.account("佐藤花子")

    # Opening the link records the read and shows the mail and the survey.
    page = await http.get(link["papa@docomo.ne.jp"])
    assert page.status_code == 200, page.text
    assert "懇談会を開きます" in page.text and "確認しました（" in page.text
    assert "山田太郎さんについて" in page.text and "懇談会に出席しますか" in page.text
    # A link scanner's prefetch records nothing: 一郎's guardian stays unread.
    pre = await http.get(link["ichiro@softbank.ne.jp"], headers={"Sec-Purpose": "prefetch"})
    assert pre.status_code == 200 and "確認しました（" not in pre.text

    # Answers: a required question missing is refused with its reason, nothing stored.
    bad = await http.post(link["papa@docomo.ne.jp"] + "/answers",
                          data={"_child": str(taro), "people": "2"})
    assert bad.status_code == 400 and "回答が必要です" in bad.text
    assert (await survey_totals(serve.people, b)).respondents == 0
    ok = await http.post(link["papa@docomo.ne.jp"] + "/answers",
                         data={"_child": str(taro), "attend": "0", "people": "２",
                               "note": "<script>alert(1)</script>"})
    assert ok.status_code == 200 and "回答を受け付けました" in ok.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in ok.text and "<script>" not in ok.text
    # Another family's child through this link: refused, nothing about 花子 stored.
    other = await http.post(link["papa@docomo.ne.jp"] + "/answers",
                            data={"_child": str(hanako), "attend": "1"})
    assert other.status_code == 400 and "回答できません" in other.text
    # A forged token changes nothing either.
    forged = link["papa@docomo.ne.jp"][:-3] + "AAA"
    assert (await http.post(forged + "/answers", data={"attend": "1"})).status_code == 400

    # The other guardian of 太郎 sees the family's answer and changes it before the deadline.
    mama = await http.get(link["mama@ezweb.ne.jp"])
    assert "山田太郎さんについて（回答済み）" in mama.text
    changed = await http.post(link["mama@ezweb.ne.jp"] + "/answers",
                              data={"_child": str(taro), "attend": "1"})
    assert changed.status_code == 200
    totals = await survey_totals(serve.people, b)
    assert totals.respondents == 1 and totals.questions[0].options == (0, 1)

    # After the deadline: refused with the time it closed, nothing changed; the page says so.
    serve.clock.advance(2 * 3600)
    late = await http.post(link["mama@ezweb.ne.jp"] + "/answers",
                           data={"_child": str(taro), "attend": "0"})
    assert late.status_code == 403 and "締め切りました" in late.text
    assert (await survey_totals(serve.people, b)).questions[0].options == (0, 1)
    assert "回答を変更する" not in (await http.get(link["mama@ezweb.ne.jp"])).text

    # Reminders (daytime only): to the two guardians who have not opened their link.
    serve.clock.advance((_next_daytime(serve.clock.now()) - serve.clock.now()).total_seconds())
    sent = await send_due_reminders(serve.people, serve.engine.queue, 86400)
    assert len(sent) == 1
    unread = ["hanako@docomo.ne.jp", "ichiro@softbank.ne.jp"]
    await wait_until(lambda: all(serve.mails(g, SUBJECT_MARK) for g in unread), timeout=15)
    assert serve.mails("papa@docomo.ne.jp", SUBJECT_MARK) == []
    assert serve.mails("mama@ezweb.ne.jp", SUBJECT_MARK) == []
    # Not due again at once: the next one waits remind_after.
    assert await send_due_reminders(serve.people, serve.engine.queue, 86400) == []

    # The reminder's link records the read against the first broadcast.
    again = link_in(serve.mails("ichiro@softbank.ne.jp", SUBJECT_MARK)[0], "/m/")
    assert again != link["ichiro@softbank.ne.jp"]
    opened = await http.get(again)
    assert opened.status_code == 200 and SUBJECT in opened.text and "確認しました（" in opened.text
    reads = await serve.people.pool.fetch(
        "SELECT broadcast_id FROM delivery_reads ORDER BY broadcast_id")
    assert [r["broadcast_id"] for r in reads] == [b, b, b]
