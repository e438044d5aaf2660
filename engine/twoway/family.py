"""The report page's side of reports: a contact's children, their open reports, confirmations.

The report page (``/report/<token>``, the token naming the contact, purpose ``report``) shows
each child the contact may report for (an active child account of an active, confirmed
contact) with the school's settings, and the reports still open to correction (active, first
day not past). After every report, correction or withdrawal the page enqueues
``confirmation`` to ``Submitted.confirm_to``: every registered contact of the child, so that a
report made by someone else is noticed. The mail goes through the queue as an emergency
broadcast (retries on the carriers' 4xx, DKIM, a delivery row). The report desk's answer
(``send_report_link``, to anybody who sends an empty mail) goes at normal priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from engine.people.store import ACCOUNT_NAME, People
from engine.platform.clock import jst
from engine.platform.config import Settings
from engine.queue import NewBroadcast, Priority, Queue
from engine.twoway.reports import NOTE, REASON, ReportKind, ReportSettings, report_settings

#: The link purpose of the report page (its token names the contact).
REPORT = "report"
_WEEKDAYS = "月火水木金土日"


@dataclass(frozen=True)
class Child:
    account_id: int
    name: str
    school_name: str
    # None: the school takes no reports.
    settings: ReportSettings | None


@dataclass(frozen=True)
class OpenReport:
    id: int
    account_id: int
    kind: ReportKind
    first_day: date
    last_day: date
    reason: str | None
    note: str
    at_time: time | None = None


async def children_of(people: People, contact_id: int) -> list[Child]:
    """The children this contact may report for, with their schools' settings."""
    rows = await people.pool.fetch(
        "SELECT a.id, a.name_sealed, a.school_id, o.name AS school FROM contact_accounts ca "
        "JOIN contacts c ON c.id = ca.contact_id JOIN accounts a ON a.id = ca.account_id "
        "JOIN organisations o ON o.id = a.school_id WHERE ca.contact_id = $1 "
        "AND a.kind = 'child' AND a.state = 'active' AND c.state = 'active' "
        "AND c.confirmed_at IS NOT NULL ORDER BY a.id",
        contact_id,
    )
    settings: dict[int, ReportSettings | None] = {}
    out: list[Child] = []
    for r in rows:
        if r["school_id"] not in settings:
            settings[r["school_id"]] = await report_settings(people.pool, r["school_id"])
        out.append(Child(
            r["id"], people.sealer.open(r["name_sealed"], ACCOUNT_NAME), r["school"],
            settings[r["school_id"]],
        ))
    return out


def accepts_reports_sql(contact: str) -> str:
    """An SQL condition: some child the contact (an SQL expression) may report for is at a
    school that takes reports (the children of ``children_of`` whose settings exist)."""
    return (
        "EXISTS (SELECT 1 FROM contact_accounts ca JOIN contacts c ON c.id = ca.contact_id "
        "JOIN accounts a ON a.id = ca.account_id "
        "JOIN report_settings rs ON rs.school_id = a.school_id "
        f"WHERE ca.contact_id = {contact} AND a.kind = 'child' AND a.state = 'active' "
        "AND c.state = 'active' AND c.confirmed_at IS NOT NULL)"
    )


async def accepts_reports(people: People, contact_id: int) -> bool:
    """Whether some child of the contact is at a school that takes reports."""
    accepts: bool = await people.pool.fetchval(
        f"SELECT {accepts_reports_sql('$1')}", contact_id
    )
    return accepts


async def open_reports(people: People, account_ids: list[int]) -> list[OpenReport]:
    """Active reports of these children whose first day has not passed, by day."""
    today = jst(people.clock.now()).date()
    rows = await people.pool.fetch(
        "SELECT id, account_id, kind, first_day, last_day, reason_sealed, note_sealed, at_time "
        "FROM attendance_reports WHERE account_id = ANY($1::bigint[]) AND state = 'active' "
        "AND first_day >= $2 ORDER BY first_day, id",
        account_ids, today,
    )
    open_ = people.sealer.open
    return [
        OpenReport(
            r["id"], r["account_id"], ReportKind(r["kind"]), r["first_day"], r["last_day"],
            open_(r["reason_sealed"], REASON) if r["reason_sealed"] else None,
            open_(r["note_sealed"], NOTE) if r["note_sealed"] else "", r["at_time"],
        )
        for r in rows
    ]


def day_label(day: date) -> str:
    """11月24日(火): how a page and a mail write a day."""
    return f"{day.month}月{day.day}日({_WEEKDAYS[day.weekday()]})"


def days_label(first: date, last: date) -> str:
    return day_label(first) if first == last else f"{day_label(first)}〜{day_label(last)}"


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation mail says; ``action``: 受け付けました, 訂正しました, 取り消しました."""

    child: str
    kind: ReportKind
    first_day: date
    last_day: date
    reason: str | None
    action: str

    @property
    def what(self) -> str:
        """欠席連絡, 遅刻連絡, 早退連絡, 健康連絡."""
        label = self.kind.label_ja
        return label if self.kind is ReportKind.HEALTH else f"{label}連絡"

    def subject(self) -> str:
        return f"【{self.what}】{self.child}さんの連絡を{self.action}"

    def body(self, at: datetime) -> str:
        lines = [
            f"{self.child}さんの{self.what}を{self.action}。",
            "",
            f"日付: {days_label(self.first_day, self.last_day)}",
        ]
        if self.reason:
            lines.append(f"理由: {self.reason}")
        lines += [
            f"受付: {jst(at):%m月%d日 %H:%M}",
            "",
            "このお知らせは、お子さまの登録済みの連絡先すべてにお送りしています。",
            "心当たりのない連絡のときは、学校へ電話でお知らせください。",
        ]
        return "\n".join(lines) + "\n"


async def send_confirmation(
    queue: Queue, settings: Settings, to: list[str], confirmation: Confirmation, now: datetime
) -> int | None:
    """Enqueue the confirmation to every address of ``to``; the broadcast id (None: nobody)."""
    if not to:
        return None
    people = settings.people
    broadcast = NewBroadcast(
        sender=people.registration_sender or people.registration_address
        or people.report_address,
        subject=confirmation.subject(), body=confirmation.body(now), recipients=list(to),
        priority=Priority.EMERGENCY,
    )
    return await queue.enqueue(broadcast, now, settings.queue.max_age)


async def send_report_link(
    queue: Queue, settings: Settings, address: str, url: str, now: datetime
) -> int:
    """Enqueue the answer to a mail to the report address: the report page's link."""
    people = settings.people
    body = (
        "欠席・遅刻・早退・健康の連絡は、下のリンクのページからできます。\n\n"
        f"{url}\n\n"
        "このリンクはお子さまの連絡専用です。ほかの人に転送しないでください。\n"
        "このメールに心当たりがないときは、何もしないでください。\n"
    )
    broadcast = NewBroadcast(
        sender=people.registration_sender or people.registration_address
        or people.report_address,
        subject="【連絡用】欠席・遅刻の連絡ページのご案内", body=body, recipients=[address],
        priority=Priority.NORMAL,
    )
    return await queue.enqueue(broadcast, now, settings.queue.max_age)
