"""The school calendar: weekends, Japanese public holidays and a school's own closures are
refused as absence / lateness / early-leave days (plain Japanese, nothing stored); lateness
and early leave carry their time; `mamoru schools closed add|remove|list`."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest
from commands import config_file, mamoru

from engine.platform.errors import InputError
from engine.twoway import NewReport, ReportFilter, ReportKind, list_reports, submit_report
from engine.twoway.school_calendar import add_closure, list_closures, remove_closure

from .conftest import World
from .test_reports import TODAY, open_school

SATURDAY = date(2026, 11, 28)
SEIJIN = date(2027, 1, 11)  # 成人の日 (second Monday of January)
FRIDAY = date(2026, 11, 27)


async def _count(world: World) -> int:
    n: int = await world.people.pool.fetchval("SELECT count(*) FROM attendance_reports")
    return n


async def test_weekends_holidays_and_closures_are_refused_in_japanese(world: World) -> None:
    school = await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    cases = [
        (NewReport(taro, ReportKind.ABSENCE, SATURDAY, reason="発熱"), "11月28日（土）", "土曜日"),
        (NewReport(taro, ReportKind.LATE, SEIJIN, reason="通院", at_time=time(10)), "1月11日（月）",
         "成人の日"),
        # A range may not start or end on a day off.
        (NewReport(taro, ReportKind.ABSENCE, FRIDAY, FRIDAY + timedelta(2), reason="発熱"),
         "11月29日（日）", "日曜日"),
    ]
    for report, day, why in cases:
        with pytest.raises(InputError) as refused:
            await submit_report(world.people, papa, report)
        assert day in str(refused.value) and why in str(refused.value)
        assert "お休みの日" in str(refused.value)
    assert await _count(world) == 0

    # The school's own closure (開校記念日) on a Thursday; removing it opens the day again.
    thursday = date(2026, 11, 26)
    assert await add_closure(world.people, school, thursday, "開校記念日")
    assert not await add_closure(world.people, school, thursday, "二度目")
    with pytest.raises(InputError, match="開校記念日"):
        await submit_report(world.people, papa,
                            NewReport(taro, ReportKind.ABSENCE, thursday, reason="発熱"))
    # Another school is not closed that day.
    saburo = await world.account(("sho2", 3, "1", 1))
    await open_school(world, "sho2")
    await submit_report(world.people, await world.contact("saburo@example.jp"),
                        NewReport(saburo, ReportKind.ABSENCE, thursday, reason="発熱"))
    assert [c.note for c in await list_closures(world.people, school)] == ["開校記念日"]
    assert await remove_closure(world.people, school, thursday)
    await submit_report(world.people, papa,
                        NewReport(taro, ReportKind.ABSENCE, thursday, reason="発熱"))
    # A range over a weekend between two school days is fine.
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.ABSENCE, FRIDAY, FRIDAY + timedelta(3), reason="発熱"))
    assert await _count(world) == 3


async def test_lateness_and_early_leave_take_their_time(world: World) -> None:
    school = await open_school(world)
    taro = await world.account(("sho1", 3, "1", 1))
    papa = await world.contact("taro.papa@docomo.ne.jp")
    needs = ((ReportKind.LATE, "到着予定の時刻"), (ReportKind.EARLY_LEAVE, "早退の時刻"))
    for kind, needed in needs:
        with pytest.raises(InputError, match=needed):
            await submit_report(world.people, papa, NewReport(taro, kind, TODAY, reason="通院"))
    with pytest.raises(InputError, match="1 日ずつ"):
        await submit_report(world.people, papa, NewReport(
            taro, ReportKind.LATE, TODAY, TODAY + timedelta(1), reason="通院", at_time=time(10)))
    assert await _count(world) == 0
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.LATE, TODAY, reason="通院", at_time=time(9, 45, 30)))
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.EARLY_LEAVE, TODAY + timedelta(1), reason="通院", at_time=time(13, 0)))
    # An absence ignores a time given with it.
    await submit_report(world.people, papa, NewReport(
        taro, ReportKind.ABSENCE, TODAY + timedelta(2), reason="発熱", at_time=time(8)))
    page = await list_reports(world.people, school, ReportFilter())
    assert [(r.kind, r.at_time) for r in page.reports] == [
        (ReportKind.LATE, time(9, 45)), (ReportKind.EARLY_LEAVE, time(13, 0)),
        (ReportKind.ABSENCE, None)]


async def test_schools_closed_from_the_command_line(
    world: World, tmp_path: Path, db_url: str
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    added = mamoru("schools", "closed", "add", "sho1", "2026-12-24", "2026-12-26",
                   "--note", "冬季休業", "-c", cfg)
    assert added.returncode == 0, added.stderr
    assert "3 日追加しました" in added.stdout
    listed = mamoru("schools", "closed", "list", "第一小学校", "-c", cfg)
    assert listed.returncode == 0 and listed.stdout.count("冬季休業") == 3
    assert "土曜日" in listed.stdout  # 26 December 2026 is a Saturday anyway
    removed = mamoru("schools", "closed", "remove", "sho1", "2026-12-26", "-c", cfg)
    assert removed.returncode == 0 and "1 日取り消しました" in removed.stdout
    school = await world.school("sho1")
    assert [c.day for c in await list_closures(world.people, school)] == [
        date(2026, 12, 24), date(2026, 12, 25)]
    for bad in (("add", "sho1", "2026-13-01"), ("add", "nosuch", "2026-12-01"),
                ("add", "city", "2026-12-01"), ("add", "sho1", "2026-12-01", "2026-11-01")):
        refused = mamoru("schools", "closed", *bad, "-c", cfg)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert len(await list_closures(world.people, school)) == 2
