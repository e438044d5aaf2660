"""Telling class teachers of new absence/lateness reports and health notes, by mail.

A school turns it on in its report settings (``set_notify_teachers``); each teacher gives the
address to be told at (``set_notify_address``, sealed like every address). A periodic job
(``send_report_notices``: ``mamoru serve`` calls it every minute or so) mails each teacher of a
class that has reports made, corrected or withdrawn since the last run: one mail per teacher
and run, whatever the number of reports, so a busy morning is a few mails, not one per child.

The mail says how many reports there are per class and links to the staff screen; it names
no child and no reason. Personal data leaves the system only when necessary, and a teacher's
address may be a phone's; the screen (after sign-in) shows the rest.

The job is batched and coupled to nothing: the guardians' report pages only store reports,
and two serve processes never mail twice (the school's row is locked while it is handled, and
``notified_until`` moves forward in the same transaction as the enqueue).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.people.store import People
from engine.platform.address import normalise_address
from engine.platform.config import Settings
from engine.queue import NewBroadcast, Priority, Queue

log = logging.getLogger(__name__)

NOTIFY = "staff.notify"


@dataclass(frozen=True)
class Notice:
    staff_id: int
    address: str
    school_id: int
    # (grade, class name) -> reports new since the last notice.
    counts: dict[tuple[int | None, str | None], int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def set_notify_teachers(pool: asyncpg.Pool, school_id: int, on: bool, now: datetime) -> None:
    """Turn the teachers' mail on or off; reports before turning it on are not announced."""
    await pool.execute(
        "UPDATE report_settings SET notify_teachers = $2, "
        "notified_until = CASE WHEN $2 THEN greatest(coalesce(notified_until, $3), $3) "
        "ELSE notified_until END WHERE school_id = $1",
        school_id, on, now,
    )


async def notify_teachers_of(pool: asyncpg.Pool, school_id: int) -> bool:
    on: bool | None = await pool.fetchval(
        "SELECT notify_teachers FROM report_settings WHERE school_id = $1", school_id
    )
    return bool(on)


async def set_notify_address(people: People, staff_id: int, address: str | None) -> None:
    """Where the staff member is told of new reports (None: nowhere)."""
    sealed = None
    if address is not None and address.strip():
        sealed = people.sealer.seal(normalise_address(address), NOTIFY)
    await people.pool.execute(
        "UPDATE staff SET notify_sealed = $2 WHERE id = $1", staff_id, sealed
    )


async def has_notify_address(pool: asyncpg.Pool, staff_id: int) -> bool:
    found: bool = await pool.fetchval(
        "SELECT notify_sealed IS NOT NULL FROM staff WHERE id = $1", staff_id
    )
    return bool(found)


async def due_notices(
    conn: asyncpg.Connection, people: People, school_id: int, since: datetime, now: datetime
) -> list[Notice]:
    """Per teacher of the school with an address: counts per class of their classes' reports
    made or changed in (since, now]."""
    rows = await conn.fetch(
        "SELECT s.id AS staff_id, s.notify_sealed, g.grade, cl.name AS class_name, "
        "count(*) AS n FROM attendance_reports r JOIN accounts a ON a.id = r.account_id "
        "JOIN staff_classes sc ON sc.class_id = a.class_id "
        "JOIN staff s ON s.id = sc.staff_id AND s.role = 'teacher' "
        "AND s.disabled_at IS NULL AND s.notify_sealed IS NOT NULL "
        "LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes cl ON cl.id = a.class_id "
        "WHERE r.school_id = $1 AND r.updated_at > $2 AND r.updated_at <= $3 "
        "GROUP BY s.id, s.notify_sealed, g.grade, cl.name ORDER BY s.id, g.grade, cl.name",
        school_id, since, now,
    )
    notices: dict[int, Notice] = {}
    for r in rows:
        n = notices.get(r["staff_id"])
        if n is None:
            address = people.sealer.open(r["notify_sealed"], NOTIFY)
            n = notices[r["staff_id"]] = Notice(r["staff_id"], address, school_id, {})
        n.counts[(r["grade"], r["class_name"])] = r["n"]
    return list(notices.values())


def notice_text(notice: Notice, public_url: str = "") -> tuple[str, str]:
    """(subject, body) of a notice: counts per class, no child named, and the link to the
    staff screens' report list (``[http] public_url`` + ``/staff/reports``; no link when it is
    not set, the text then says where to look)."""
    lines = "".join(
        f"・{'' if g is None else f'{g}年'}{'' if c is None else f'{c}組'}: {n} 件\n"
        for (g, c), n in sorted(notice.counts.items(), key=lambda kv: (kv[0][0] or 0,
                                                                        kv[0][1] or ""))
    )
    where = (
        f"内容は、学校の管理画面にログインして、連絡の一覧でご確認ください。\n"
        f"{public_url.rstrip('/')}/staff/reports\n\n" if public_url else
        "内容は、学校の管理画面にログインして、連絡の一覧でご確認ください。\n\n"
    )
    body = (
        "受け持ちの組に、欠席・遅刻・早退の連絡または健康連絡が届きました"
        "（訂正・取り消しを含みます）。\n\n"
        f"{lines}\n"
        f"{where}"
        "このメールには児童生徒の氏名や理由は書いていません。\n"
    )
    return f"【連絡】欠席・遅刻などの連絡が {notice.total} 件あります", body


async def send_report_notices(
    people: People, queue: Queue, settings: Settings, now: datetime
) -> int:
    """Mail every teacher owed a notice now (see the module docstring); return mails queued."""
    sender = settings.people.registration_sender or settings.people.registration_address
    if not sender:
        return 0
    sent = 0
    async with people.pool.acquire() as conn, conn.transaction():
        schools = await conn.fetch(
            "SELECT school_id, notified_until FROM report_settings "
            "WHERE notify_teachers AND notified_until < $1 FOR UPDATE SKIP LOCKED",
            now,
        )
        for s in schools:
            for notice in await due_notices(conn, people, s["school_id"], s["notified_until"],
                                            now):
                subject, body = notice_text(notice, settings.http.public_url)
                await queue.enqueue(
                    NewBroadcast(sender=sender, subject=subject, body=body,
                                 recipients=[notice.address], priority=Priority.NORMAL),
                    now, settings.queue.max_age, conn=conn,
                )
                sent += 1
            await conn.execute(
                "UPDATE report_settings SET notified_until = $2 WHERE school_id = $1",
                s["school_id"], now,
            )
    if sent:
        log.info("report notices: %d mail(s) to class teachers", sent)
    return sent
