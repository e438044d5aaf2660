"""The monthly operation report (issue 23) against the known month of conftest.py: every figure,
the board's scope, the PDF (font embedded, Japanese text extractable), the CSV (BOM, Japanese
headers, Japan time) and the command line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from commands import config_file, run_mamoru
from pdf_tools import fonts_of, need, pages_text

from engine.platform.errors import InputError
from engine.staff.monthly_output import monthly_csv, monthly_pdf
from engine.staff.monthly_report import CLI_OWNER, monthly_report
from report.conftest import A_AT, B_AT, LAST_DAY, T_AT, Month

S = timedelta(seconds=1)


async def test_every_figure_of_the_month(month: Month) -> None:
    r = await monthly_report(month.engine.pool, month.key, "2026-11", month.clock.now())
    assert (r.start.isoformat(), r.end.isoformat()) == (
        "2026-11-01T00:00:00+09:00", "2026-12-01T00:00:00+09:00")
    # Broadcasts in the month by send time (October's O is not), in order.
    assert [b.id for b in r.broadcasts] == [month.broadcasts[n] for n in ("A", "T", "B")]
    a, t, b = r.broadcasts
    assert (a.owner, a.category, a.recipients, a.delivered, a.failed, a.pending) == (
        "第一小学校", "緊急", 23, 20, 3, 0)
    assert (a.first_at, a.last_at) == (A_AT + 1 * S, A_AT + 20 * S)
    assert (a.p50, a.p95, a.p100) == (10 * S, 19 * S, 20 * S)
    assert (b.owner, b.category, b.first_at, b.last_at) == (
        CLI_OWNER, "お知らせ", B_AT + 60 * S, B_AT + 240 * S)
    assert (b.p50, b.p95, b.p100) == (120 * S, 240 * S, 240 * S)
    assert (t.owner, t.delivered, t.failed, t.first_at, t.p50, t.p100) == (
        "あおば小学校", 1, 1, T_AT + 30 * S, 30 * S, 30 * S)
    assert [(s.owner, s.category, s.broadcasts) for s in r.by_school] == [
        ("あおば小学校", "学校行事", 1), (CLI_OWNER, "お知らせ", 1), ("第一小学校", "緊急", 1)]
    # Failures of the month's broadcasts only (O's unknown user is October's).
    assert [(f.label, f.count) for f in r.failures] == [
        ("宛先不明", 2), ("容量超過", 1), ("受信拒否・フィルタ", 1)]
    # sho1: taro's guardian registered in November, jiro left, hanako's never confirmed.
    assert [(p.code, p.registered, p.leavers, p.accounts, p.reachable) for p in r.people] == [
        ("sho1", 1, 1, 3, 2), ("sho2", 0, 0, 1, 1), ("tsho", 0, 0, 1, 1)]
    assert r.people[0].rate == pytest.approx(2 / 3)
    # docomo: one block on the 10th, two more and a suspension on the 11th; au's is October's.
    assert [(c.site, c.blocks, c.suspensions, c.reason) for c in r.carriers] == [
        ("docomo", 3, 1, "554 rejected")]
    # Up from the first heartbeat (23:50) to the month's end: 23:50-23:55 and 23:58-24:00.
    av = r.availability
    assert av is not None and av.start == LAST_DAY
    assert (av.up_seconds, av.period_seconds) == (420.0, 600.0)
    assert av.ratio == pytest.approx(0.7)
    assert [(o.start, o.end) for o in av.outages] == [
        (LAST_DAY + timedelta(minutes=5), LAST_DAY + timedelta(minutes=8))]
    assert r.audit is not None and r.audit.ok and r.audit.checked == 3
    assert r.audit_entries == 2
    assert [(b.ok, b.name) for b in r.backups] == [
        (True, "mamoru-20261101-023000.backup"), (False, "")]


async def test_history_is_compact(month: Month) -> None:
    pool = month.engine.pool
    # 100 heartbeats are one row per run of each runner; snapshots without growth add nothing.
    assert await pool.fetchval("SELECT count(*) FROM runner_uptime") == 3
    assert await pool.fetchval("SELECT count(*) FROM shaping_events") == 3


async def test_a_board_sees_its_own_schools_and_broadcasts(month: Month) -> None:
    r = await monthly_report(month.engine.pool, month.key, "2026-11", month.clock.now(), "city")
    assert r.board == "みどり市教育委員会"
    # Two boards: the command line's broadcast is nobody's school's, town's is town's.
    assert [b.id for b in r.broadcasts] == [month.broadcasts["A"]]
    assert [(f.label, f.count) for f in r.failures] == [("宛先不明", 2), ("容量超過", 1)]
    assert [p.code for p in r.people] == ["sho1", "sho2"]
    assert r.audit is not None and r.audit.ok


@pytest.mark.parametrize(("month_text", "board", "says"), [
    ("2026-13", None, "2026-11 の形"),
    ("November", None, "2026-11 の形"),
    ("2027-01", None, "まだ始まっていません"),
    ("2026-11", "sho1", "教育委員会ではありません"),
    ("2026-11", "nowhere", "登録されていません"),
])
async def test_bad_month_or_board_is_refused(
    month: Month, month_text: str, board: str | None, says: str
) -> None:
    with pytest.raises(InputError, match=says):
        await monthly_report(month.engine.pool, month.key, month_text, month.clock.now(), board)


async def test_pdf_embeds_the_font_and_its_text_reads_back(month: Month, tmp_path: Path) -> None:
    need("pdffonts", "pdftotext")
    r = await monthly_report(month.engine.pool, month.key, "2026-11", month.clock.now())
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(monthly_pdf(r))
    fonts = fonts_of(pdf)
    assert fonts and all(f.embedded and f.subset and "NotoSansJP" in f.name for f in fonts)
    text = "".join(pages_text(pdf))
    for expected in ("月次運用レポート 2026-11", "第一小学校", "緊急", "宛先不明", "docomo",
                     "稼働率 70.000%", "監査ログは改ざんされていません",
                     "mamoru-20261101-023000.backup", "10.0秒", "19.0秒"):
        assert expected in text, expected


async def test_csv_is_excel_japanese(month: Month) -> None:
    r = await monthly_report(month.engine.pool, month.key, "2026-11", month.clock.now())
    data = monthly_csv(r)
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("月次運用レポート,2026-11,全体,作成 2026-12-05 09:00:00")
    at = lines.index("■ 配信ごとの配信時間 (送信時刻から)")
    assert lines[at + 1].startswith("配信番号,送信時刻,学校,区分,件名,宛先数")
    assert lines[at + 2] == (
        f"{month.broadcasts['A']},2026-11-05 08:00:00,第一小学校,緊急,A のお知らせ,23,20,3,0,"
        "2026-11-05 08:00:01,2026-11-05 08:00:20,10.0,19.0,20.0")
    at = lines.index("■ 稼働率")
    assert lines[at + 2] == "2026-11-30 23:50:00,2026-12-01 00:00:00,420,600,70.000%"


async def test_command_writes_pdf_and_csv(month: Month, tmp_path: Path) -> None:
    cfg = config_file(tmp_path, month.settings.database.url, "127.0.0.1:9")
    code, out, err = await run_mamoru(
        "report", "monthly", "--month", "2026-11", "--board", "city",
        "--pdf", tmp_path / "m.pdf", "--csv", tmp_path / "m.csv", "-c", cfg)
    assert code == 0, err
    assert "月次運用レポート 2026-11 (みどり市教育委員会)" in out
    assert "稼働率 70.000%" in out
    assert (tmp_path / "m.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "m.pdf").stat().st_mode & 0o077 == 0
    assert "第一小学校" in (tmp_path / "m.csv").read_text(encoding="utf-8-sig")
    code, _, err = await run_mamoru("report", "monthly", "--month", "11月", "-c", cfg)
    assert code == 2 and "2026-11 の形" in err
