"""Absence/lateness reports and health notes: hours, confirmation to every contact, filters."""

from __future__ import annotations

import csv
import io
from datetime import date, time, timedelta
from decimal import Decimal

import pytest

from engine.people.contacts import leave
from engine.platform.errors import InputError
from engine.twoway import (
    AnswerError,
    NewReport,
    Question,
    QuestionKind,
    ReportClosed,
    ReportFilter,
    ReportKind,
    correct_report,
    list_reports,
    new_report_count,
    reports_csv,
    set_report_settings,
    submit_report,
    withdraw_report,
)

from .conftest import World

TODAY = date(2026, 11, 24)  # MORNING is 07:30 JST on this day (a Tuesday)
# Lateness and early leave carry a time (expected arrival, leaving).
AT = time(10, 0)
REASONS = ["発熱", "通院", "家庭の事情"]
HEALTH = [
    Question("temperature", "体温", QuestionKind.NUMBER, True, minimum=Decimal(34),
             maximum=Decimal(43), unit="℃"),
    Question("symptoms", "症状", QuestionKind.MULTIPLE, False, ("せき", "鼻水", "頭痛")),
]


async def open_school(world: World, code: str = "sho1") -> int:
    school = await world.school(code)
    await set_report_settings(world.people, school, time(6, 0), time(8, 30), REASONS, HEALTH)
    return school


async def test_a_report_confirms_to_every_contact_of_the_child(world: World) -> None:
    await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    done = await submit_report(world.people, await world.contact("kyoudai@ezweb.ne.jp"),
                               NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱"))
    assert done.confirm_to == ["kyoudai@ezweb.ne.jp", "taro.papa@docomo.ne.jp"]


async def test_a_contact_that_left_gets_no_confirmation(world: World) -> None:
    await open_school(world)
    ichiro = await world.account(("sho1", 3, "2", 1))
    await leave(world.people, "ichiro-2@i.softbank.jp")
    done = await submit_report(world.people, await world.contact("ichiro@softbank.ne.jp"),
                               NewReport(ichiro, ReportKind.LATE, TODAY, reason="通院", at_time=AT))
    assert done.confirm_to == ["ichiro@softbank.ne.jp"]


async def test_a_report_outside_the_hours_is_refused_with_a_clear_message(world: World) -> None:
    await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    contact = await world.contact("taro.papa@docomo.ne.jp")
    world.clock.advance(3600)  # 08:30 JST: closed
    with pytest.raises(ReportClosed, match="06:00〜08:30 に受け付けています"):
        await submit_report(world.people, contact,
                            NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱"))
    assert await world.people.pool.fetchval("SELECT count(*) FROM attendance_reports") == 0


async def test_a_window_across_midnight_accepts_the_evening_and_the_early_morning(
    world: World,
) -> None:
    school = await world.school("sho1")
    await set_report_settings(world.people, school, time(18, 0), time(8, 0), REASONS)
    taro = await world.account(("sho1", 3, "1", 1))
    contact = await world.contact("taro.papa@docomo.ne.jp")
    await submit_report(world.people, contact,
                        NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱"))  # 07:30
    world.clock.advance(3600)  # 08:30
    with pytest.raises(ReportClosed):
        await submit_report(world.people, contact,
                            NewReport(taro, ReportKind.LATE, TODAY, reason="通院", at_time=AT))
    world.clock.advance(10 * 3600)  # 18:30
    await submit_report(world.people, contact,
                        NewReport(taro, ReportKind.LATE, TODAY + timedelta(1), reason="通院",
                                  at_time=AT))


async def test_bad_reports_are_refused_and_change_nothing(world: World) -> None:
    await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    hanako_contact = await world.contact("hanako.mama@docomo.ne.jp")
    papa = await world.contact("taro.papa@docomo.ne.jp")
    cases = [
        # Another family's child.
        (hanako_contact, NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱")),
        (papa, NewReport(taro, ReportKind.ABSENCE, TODAY, reason="ずる休み")),
        (papa, NewReport(taro, ReportKind.ABSENCE, TODAY - timedelta(1), reason="発熱")),
        (papa, NewReport(taro, ReportKind.ABSENCE, TODAY, TODAY - timedelta(1), reason="発熱")),
        (papa, NewReport(taro, ReportKind.ABSENCE, TODAY, TODAY + timedelta(40), reason="発熱")),
        (papa, NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱", note="あ" * 1001)),
    ]
    for contact, report in cases:
        with pytest.raises(InputError):
            await submit_report(world.people, contact, report)
    # A school that has not set its hours takes no report.
    saburo = await world.account(("sho2", 3, "1", 1))
    with pytest.raises(InputError, match="受け付けていません"):
        await submit_report(world.people, await world.contact("saburo@example.jp"),
                            NewReport(saburo, ReportKind.ABSENCE, TODAY, reason="発熱"))
    assert await world.people.pool.fetchval("SELECT count(*) FROM attendance_reports") == 0


async def test_a_report_is_corrected_or_withdrawn_within_the_hours_only(world: World) -> None:
    school = await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    other = await world.contact("kyoudai@ezweb.ne.jp")
    done = await submit_report(world.people, papa,
                               NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱"))
    fixed = await correct_report(world.people, other, done.report_id,
                                 NewReport(taro, ReportKind.LATE, TODAY, reason="通院",
                                           note="10時に登校します", at_time=AT))
    assert fixed.confirm_to == ["kyoudai@ezweb.ne.jp", "taro.papa@docomo.ne.jp"]
    page = await list_reports(world.people, school, ReportFilter())
    assert [(r.kind, r.reason, r.note) for r in page.reports] == [
        (ReportKind.LATE, "通院", "10時に登校します")]
    # Not through another family's contact.
    with pytest.raises(InputError):
        await withdraw_report(world.people, await world.contact("hanako.mama@docomo.ne.jp"),
                              done.report_id)
    world.clock.advance(3600)
    with pytest.raises(ReportClosed):
        await withdraw_report(world.people, papa, done.report_id)
    world.clock.advance(22 * 3600)  # 06:30 the next day: open, but the day has passed
    with pytest.raises(InputError, match="過ぎた日"):
        await withdraw_report(world.people, papa, done.report_id)
    page = await list_reports(world.people, school, ReportFilter())
    assert [r.state for r in page.reports] == ["active"]


async def test_a_withdrawn_report_leaves_the_default_list(world: World) -> None:
    school = await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    done = await submit_report(world.people, papa,
                               NewReport(taro, ReportKind.ABSENCE, TODAY, reason="発熱"))
    await withdraw_report(world.people, papa, done.report_id)
    assert (await list_reports(world.people, school, ReportFilter())).total == 0
    page = await list_reports(world.people, school, ReportFilter(include_withdrawn=True))
    assert [r.state for r in page.reports] == ["withdrawn"]
    with pytest.raises(InputError):
        await withdraw_report(world.people, papa, done.report_id)


async def filled(world: World) -> dict[str, int]:
    """Reports of four children of sho1 and one of sho2; their ids by a short name."""
    await open_school(world)
    await open_school(world, "sho2")
    c = world.contact
    ids = {}
    for name, contact, child, report in [
        ("taro", "taro.papa@docomo.ne.jp", ("sho1", 3, "1", 1),
         (ReportKind.ABSENCE, TODAY, TODAY + timedelta(2))),
        ("hanako", "hanako.mama@docomo.ne.jp", ("sho1", 3, "1", 2),
         (ReportKind.LATE, TODAY, None)),
        ("ichiro", "ichiro@softbank.ne.jp", ("sho1", 3, "2", 1),
         (ReportKind.EARLY_LEAVE, TODAY + timedelta(1), None)),
        ("jiro", "kyoudai@ezweb.ne.jp", ("sho1", 1, "1", 5),
         (ReportKind.ABSENCE, TODAY + timedelta(3), None)),
        ("saburo", "saburo@example.jp", ("sho2", 3, "1", 1),
         (ReportKind.ABSENCE, TODAY, None)),
    ]:
        kind, first, last = report
        done = await submit_report(world.people, await c(contact), NewReport(
            await world.account(child), kind, first, last, reason="発熱", at_time=AT))
        ids[name] = done.report_id
    return ids


async def test_staff_filters_return_exactly_the_right_reports(world: World) -> None:
    ids = await filled(world)
    school = await world.school("sho1")

    async def names(f: ReportFilter) -> set[int]:
        return {r.id for r in (await list_reports(world.people, school, f)).reports}

    assert await names(ReportFilter()) == {ids["taro"], ids["hanako"], ids["ichiro"], ids["jiro"]}
    # A day inside 太郎's range counts it.
    tomorrow = TODAY + timedelta(1)
    assert await names(ReportFilter(tomorrow, tomorrow)) == {ids["taro"], ids["ichiro"]}
    assert await names(ReportFilter(TODAY + timedelta(3), None)) == {ids["jiro"]}
    assert await names(ReportFilter(grade_id=await world.grade("sho1", 3))) == {
        ids["taro"], ids["hanako"], ids["ichiro"]}
    assert await names(ReportFilter(class_id=await world.class_id("sho1", 3, "1"))) == {
        ids["taro"], ids["hanako"]}
    assert await names(ReportFilter(kind=ReportKind.ABSENCE)) == {ids["taro"], ids["jiro"]}
    assert await names(ReportFilter(TODAY, TODAY, kind=ReportKind.ABSENCE,
                                    grade_id=await world.grade("sho1", 3))) == {ids["taro"]}
    # The other school sees only its own.
    other = await list_reports(world.people, await world.school("sho2"), ReportFilter())
    assert [r.id for r in other.reports] == [ids["saburo"]]


async def test_listing_pages_and_csv_hold_every_report(world: World) -> None:
    await filled(world)
    school = await world.school("sho1")
    first = await list_reports(world.people, school, ReportFilter(), limit=3)
    rest = await list_reports(world.people, school, ReportFilter(), limit=3, offset=3)
    assert first.total == rest.total == 4 and len(first.reports) == 3 and len(rest.reports) == 1
    assert not {r.id for r in first.reports} & {r.id for r in rest.reports}
    with pytest.raises(InputError):
        await list_reports(world.people, school, ReportFilter(), limit=0)
    data = await reports_csv(world.people, school, ReportFilter())
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:10] == ["種別", "開始日", "終了日", "時刻", "学年", "組", "番号", "氏名",
                            "理由", "連絡事項"]
    assert [r[7] for r in rows[1:]] == ["山田太郎", "佐藤花子", "鈴木一郎", "山田次郎"]
    # Lateness and early leave carry their time; an absence none.
    assert [r[3] for r in rows[1:]] == ["", "10:00", "10:00", ""]
    assert rows[1][:3] == ["欠席", "2026-11-24", "2026-11-26"]


async def test_the_new_report_count_counts_only_after_the_time_and_own_school(
    world: World,
) -> None:
    before = world.clock.now()
    await filled(world)
    school = await world.school("sho1")
    assert await new_report_count(world.people, school, before - timedelta(1)) == 4
    assert await new_report_count(world.people, school, before - timedelta(1),
                                  ReportKind.ABSENCE) == 2
    world.clock.advance(60)
    later = world.clock.now()
    assert await new_report_count(world.people, school, later) == 0
    taro = await world.account(("sho1", 3, "1", 1))
    await submit_report(world.people, await world.contact("taro.papa@docomo.ne.jp"),
                        NewReport(taro, ReportKind.LATE, TODAY + timedelta(6), reason="通院",
                                  at_time=AT))
    assert await new_report_count(world.people, school, later - timedelta(seconds=1)) == 1


async def test_a_health_note_takes_the_school_questions(world: World) -> None:
    school = await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    with pytest.raises(AnswerError) as bad:
        await submit_report(world.people, papa, NewReport(
            taro, ReportKind.HEALTH, TODAY, answers={"temperature": "45"}))
    assert set(bad.value.problems) == {"temperature"}
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.HEALTH, TODAY, answers={"temperature": "37.5", "symptoms": ["0", "2"]}))
    page = await list_reports(world.people, school, ReportFilter(kind=ReportKind.HEALTH))
    assert page.reports[0].answers == {"temperature": Decimal("37.5"), "symptoms": (0, 2)}
    rows = list(csv.reader(io.StringIO((await reports_csv(
        world.people, school, ReportFilter(kind=ReportKind.HEALTH))).decode("utf-8-sig"))))
    assert rows[0][10:12] == ["体温", "症状"] and rows[1][10:12] == ["37.5", "せき、頭痛"]


async def test_reasons_notes_and_health_answers_are_not_stored_in_clear(world: World) -> None:
    await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.ABSENCE, TODAY, reason="家庭の事情", note="祖父の葬儀のため"))
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.HEALTH, TODAY, answers={"temperature": "38.2"}))
    dump: str = await world.people.pool.fetchval(
        "SELECT string_agg(r::text, '|') FROM attendance_reports r")
    for words in ("家庭の事情", "葬儀", "38.2"):
        assert words not in dump and words.encode().hex() not in dump


async def test_bad_settings_are_refused(world: World) -> None:
    school = await world.school("sho1")
    with pytest.raises(InputError):
        await set_report_settings(world.people, school, time(7), time(7), REASONS)
    with pytest.raises(InputError):
        await set_report_settings(world.people, school, time(6), time(9), [])
    with pytest.raises(InputError):
        await set_report_settings(world.people, 99999, time(6), time(9), REASONS)
    assert await world.people.pool.fetchval("SELECT count(*) FROM report_settings") == 0
