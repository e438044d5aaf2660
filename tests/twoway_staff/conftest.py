"""Fixtures for the staff side of two-way: the staff API world (tests/staff) plus helpers that
act as the guardians' side would (deliver, read, answer, report) through the engine."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

from staff.conftest import World, world  # noqa: F401  (the fixture, reused)

from engine.platform.clock import jst
from engine.queue import AttemptResult, Outcome
from engine.twoway import NewReport, ReportKind, record_read, submit_answers, submit_report
from engine.twoway.school_calendar import default_day_off

SENDER = "sho1@example.jp"
QUESTIONS = [
    {"key": "attend", "label": "参加しますか", "kind": "single", "required": True,
     "options": ["参加", "不参加"]},
    {"key": "people", "label": "参加人数", "kind": "number", "minimum": 0, "maximum": 10,
     "unit": "人"},
    {"key": "note", "label": "ご意見", "kind": "text"},
]


def asking_body(audience: dict[str, Any], w: World, **extra: Any) -> dict[str, Any]:
    return {
        "sender": SENDER, "subject": "遠足のお知らせ", "body": "来週は遠足です。",
        "audience": audience,
        "read_confirmation": {"remind_after_minutes": 120, "max_reminders": 2},
        "questions": QUESTIONS,
        "answer_deadline": (w.clock.now() + timedelta(days=3)).isoformat(),
        **extra,
    }


async def create(w: World, login: str, body: dict[str, Any]) -> int:
    token = await w.login(login)
    async with w.client(token) as c:
        r = await c.post("/api/staff/broadcasts", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["broadcast_id"])


async def deliver_all(w: World) -> None:
    """Every queued delivery delivered, as a runner would record it."""
    q = w.api.queue
    now = w.clock.now()
    claimed = await q.claim("test-runner", 10_000, now, 60)
    await q.record("test-runner",
                   [AttemptResult(c.id, Outcome.DELIVERED, now, 250) for c in claimed])


async def deliveries(w: World, broadcast_id: int) -> dict[str, int]:
    rows = await w.api.queue.deliveries_of(broadcast_id)
    return {r["recipient"]: r["id"] for r in rows}


async def read(w: World, delivery_id: int) -> None:
    await record_read(w.api.people, delivery_id)


async def answer(w: World, delivery_id: int, form: dict[str, str]) -> None:
    await submit_answers(w.api.people, delivery_id, form)


async def contact(w: World, address: str) -> int:
    people = w.api.people
    found: int = await people.pool.fetchval(
        "SELECT id FROM contacts WHERE address_hash = $1",
        people.sealer.lookup_hash(address, "contact.address"),
    )
    return found


async def account_of(w: World, address: str) -> int:
    found: int = await w.api.people.pool.fetchval(
        "SELECT account_id FROM contact_accounts WHERE contact_id = $1",
        await contact(w, address),
    )
    return found


def open_hours(w: World) -> dict[str, str]:
    """Report hours around the fixture's clock (Japan time)."""
    now = jst(w.clock.now())
    return {"opens": (now - timedelta(hours=1)).strftime("%H:%M"),
            "closes": (now + timedelta(hours=1)).strftime("%H:%M")}


def report_day(w: World, days: int = 0) -> date:
    """The ``days``-th school day from the first school day on or after today: this world
    runs on the real date, and reports are refused on weekends and public holidays
    (engine/twoway/school_calendar.py)."""
    day = jst(w.clock.now()).date()
    while default_day_off(day):
        day += timedelta(days=1)
    for _ in range(days):
        day += timedelta(days=1)
        while default_day_off(day):
            day += timedelta(days=1)
    return day


async def report(
    w: World, address: str, kind: ReportKind = ReportKind.ABSENCE, days: int = 0,
    reason: str = "発熱", note: str = "",
) -> int:
    """A report for the ``days``-th school day (lateness and early leave at 10:00)."""
    done = await submit_report(w.api.people, await contact(w, address), NewReport(
        await account_of(w, address), kind, report_day(w, days), reason=reason, note=note,
        at_time=time(10, 0),
    ))
    return done.report_id
