"""The monthly operation report written out: PDF (Japanese font embedded) and CSV for Excel.

Both carry the same sections as ``engine.staff.monthly_report`` computes them, in Japan time.
The CSV is one file in the house style (UTF-8 with BOM, CRLF, formula-safe cells,
``engine.platform.csv_io``): a title row, then each section as a line 「■ 見出し」, its own
header row and its rows, a blank line between sections; durations are seconds there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from engine.platform.clock import jst_text
from engine.platform.csv_io import csv_bytes
from engine.platform.pdf_flow import FlowDocument
from engine.staff.monthly_report import MonthlyReport

TITLE = "月次運用レポート"
BROADCAST_HEADER = ("配信番号", "送信時刻", "学校", "区分", "件名", "宛先数", "配信済み", "失敗",
                    "未完了", "最初の配信", "最後の配信", "50%", "95%", "100%")
SCHOOL_HEADER = ("学校", "区分", "配信数")
FAILURE_HEADER = ("エラー区分", "扱い", "件数")
PEOPLE_HEADER = ("学校コード", "学校", "登録 (月内に確認)", "退会 (月内に終了)",
                 "月末のアカウント", "うち連絡先登録済み", "登録率")
CARRIER_HEADER = ("サイト (携帯会社等)", "ブロック", "一時停止", "最後の記録",
                  "最後のブロックの応答")
OUTAGE_HEADER = ("停止の始まり", "停止の終わり", "長さ")
BACKUP_HEADER = ("日時", "結果", "ファイル", "詳細")


def duration_ja(d: timedelta | None) -> str:
    """ "1分02秒", "3時間05分", "" for None."""
    if d is None:
        return ""
    s = d.total_seconds()
    if s < 60:
        return f"{s:.1f}秒"
    whole = int(s)
    if whole < 3600:
        return f"{whole // 60}分{whole % 60:02d}秒"
    return f"{whole // 3600}時間{whole % 3600 // 60:02d}分"


def percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{digits}f}%"


def _seconds(d: timedelta | None) -> object:
    return "" if d is None else round(d.total_seconds(), 1)


def availability_text(r: MonthlyReport) -> str:
    a = r.availability
    if a is None or a.ratio is None:
        return "稼働率: 記録がありません (配信プロセスの生存通知が記録されていません)"
    outage = timedelta(seconds=a.period_seconds - a.up_seconds)
    return (
        f"稼働率 {percent(a.ratio, 3)} ({jst_text(a.start, seconds=False)} から "
        f"{jst_text(a.end, seconds=False)} までのうち、配信プロセスが 1 つ以上動いていた"
        "時間の割合。"
        f"停止 合計 {duration_ja(outage)}、1 分以上の停止 {len(a.outages)} 回)"
    )


def audit_text(r: MonthlyReport) -> str:
    state = r.audit.summary_ja() if r.audit else "未確認"
    return f"{state}。この月の記録 {r.audit_entries} 件"


def sections(r: MonthlyReport) -> dict[str, tuple[Sequence[str], list[list[object]]]]:
    a = r.availability
    return {
        "配信 (学校・区分別)": (SCHOOL_HEADER, [[s.owner, s.category, s.broadcasts]
                                              for s in r.by_school]),
        "配信ごとの配信時間 (送信時刻から)": (BROADCAST_HEADER, [
            [b.id, jst_text(b.send_at), b.owner, b.category, b.subject[:40]
             + ("…" if len(b.subject) > 40 else ""), b.recipients, b.delivered, b.failed,
             ("取消 " if b.cancelled else "") + str(b.pending), jst_text(b.first_at),
             jst_text(b.last_at), b.p50, b.p95, b.p100]
            for b in r.broadcasts
        ]),
        "失敗 (エラー区分別)": (FAILURE_HEADER, [
            [f.label, "停止" if f.hard else "再送", f.count] for f in r.failures
        ]),
        "登録・退会・登録率 (学校別)": (PEOPLE_HEADER, [
            [p.code, p.name, p.registered, p.leavers, p.accounts, p.reachable, percent(p.rate)]
            for p in r.people
        ]),
        "ブロック・一時停止 (受信側サイト別)": (CARRIER_HEADER, [
            [c.site, c.blocks, c.suspensions, jst_text(c.last_at), c.reason[:80]]
            for c in r.carriers
        ]),
        "稼働率と停止した時間 (1 分以上)": (OUTAGE_HEADER, [
            [jst_text(o.start), jst_text(o.end), o.end - o.start]
            for o in (a.outages if a else ())
        ]),
        "バックアップ": (BACKUP_HEADER, [
            [jst_text(b.at), "成功" if b.ok else "失敗", b.name, b.detail[:80]]
            for b in r.backups
        ]),
    }


def monthly_csv(r: MonthlyReport) -> bytes:
    """The report as one CSV file (see the module's text)."""
    rows: list[Sequence[object]] = []
    for title, (header, lines) in sections(r).items():
        rows += [[], [f"■ {title}"], header]
        rows += [[_seconds(c) if isinstance(c, timedelta) else c for c in line]
                 for line in lines]
    a = r.availability
    rows += [[], ["■ 稼働率"], ["開始", "終了", "稼働 (秒)", "期間 (秒)", "稼働率"],
             [jst_text(a.start) if a else "", jst_text(a.end) if a else "",
              round(a.up_seconds) if a else "", round(a.period_seconds) if a else "",
              percent(a.ratio if a else None, 3)]]
    rows += [[], ["■ 監査ログ"], ["状態", "確認した件数", "この月の記録"],
             ["改ざんなし" if r.audit and r.audit.ok else "異常あり",
              r.audit.checked if r.audit else "", r.audit_entries]]
    if r.audit and not r.audit.ok:
        rows.append([r.audit.summary_ja()])
    header = (TITLE, r.month, r.scope_ja, f"作成 {jst_text(r.generated_at)} (日本時間)")
    return csv_bytes(header, rows)


_WIDTHS = {
    "配信 (学校・区分別)": (4, 2, 1),
    "配信ごとの配信時間 (送信時刻から)": (1, 2.6, 2.6, 1.4, 2.8, 1, 1, 1, 1, 2.6, 2.6, 1.3, 1.3,
                                         1.3),
    "失敗 (エラー区分別)": (4, 1, 1),
    "登録・退会・登録率 (学校別)": (2, 3, 1.5, 1.5, 1.5, 1.5, 1.2),
    "ブロック・一時停止 (受信側サイト別)": (2, 1, 1, 2.2, 5),
    "稼働率と停止した時間 (1 分以上)": (2, 2, 1.5),
    "バックアップ": (2.2, 1, 3.5, 3),
}


def _pdf_cell(cell: object, month: str) -> object:
    """Durations as people read them; in the wide table of broadcasts, times without the year
    (the month is the report's)."""
    if isinstance(cell, timedelta):
        return duration_ja(cell)
    if month and isinstance(cell, str) and len(cell) == 19 and cell.startswith(month[:5]):
        return cell[5:]
    return cell


def monthly_pdf(r: MonthlyReport) -> bytes:
    """The report as an A4 PDF with the Japanese font embedded."""
    doc = FlowDocument(f"{TITLE} {r.month}")
    doc.line(f"対象: {r.scope_ja}  期間: {jst_text(r.start, seconds=False)} 〜 "
             f"{jst_text(r.end, seconds=False)} (日本時間)  作成: {jst_text(r.generated_at)}")
    doc.line(f"配信 {len(r.broadcasts)} 件、宛先 {sum(b.recipients for b in r.broadcasts)} 件、"
             f"失敗 {sum(f.count for f in r.failures)} 件")
    for title, (header, lines) in sections(r).items():
        doc.heading(title)
        if title.startswith("稼働率"):
            doc.line(availability_text(r))
        if not lines:
            doc.line("(該当なし)")
            continue
        many = title.startswith("配信ごと")
        shown = [[_pdf_cell(c, r.month if many else "") for c in line] for line in lines]
        doc.table(header, shown, _WIDTHS[title], size=6.5 if many else 8.5)
    doc.heading("監査ログ")
    doc.line(audit_text(r))
    doc.line("配信時間は送信時刻 (予約配信は予約時刻) から各宛先への配信完了までの時間で、"
             "配信済みの宛先だけで数えています。登録率は月末に有効なアカウントのうち、"
             "確認済みで退会していない連絡先が 1 件以上あるものの割合です。", size=8)
    return doc.output()
