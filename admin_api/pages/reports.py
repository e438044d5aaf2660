"""The report page: 欠席・遅刻・早退 and 健康連絡 for a guardian's children, ``/report/<token>``.

The token names the contact (purpose ``report``); it is reached from the personal page and
from the answer to a mail to the report address. The page lists the contact's children (each
with the school's reasons and health questions) and the reports still open to change.
``POST /report/<token>`` makes a report (or corrects one, with ``_report``);
``POST /report/<token>/<id>/withdraw`` withdraws one. Every success enqueues a confirmation to
every registered contact of the child (engine/twoway/family.py). Outside the school's hours
the page says when reports are accepted, with 403, and nothing changes.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import message_page, question_fields
from admin_api.pages.page_guard import verified
from admin_api.site import REPORT, Site, site_of
from admin_api.templating import templates
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.twoway import (
    AnswerError,
    NewReport,
    ReportClosed,
    ReportKind,
    correct_report,
    submit_report,
    withdraw_report,
)
from engine.twoway.family import (
    Child,
    Confirmation,
    OpenReport,
    children_of,
    day_label,
    days_label,
    open_reports,
    send_confirmation,
)
from engine.twoway.reports import TIME_NEEDED

router = APIRouter(include_in_schema=False)
TITLE = "欠席・遅刻・早退・健康の連絡"
# Days offered in the form: today and the next 30 (a select works on every phone's browser).
_DAYS_OFFERED = 31
_SENT = "確認のメールを、お子さまの登録済みの連絡先すべてにお送りしました。"


async def _render(
    request: Request, site: Site, token: str, contact_id: int, *, notice: str = "",
    error: str = "", problems: dict[str, str] | None = None, status: int = 200,
) -> HTMLResponse:
    people = site.people
    now = people.clock.now()
    children = await children_of(people, contact_id)
    if not children:
        return message_page(
            request, TITLE, "このアドレスから連絡できるお子さまがいません。"
            " (no child to report for)", 404,
        )
    reports = await open_reports(people, [c.account_id for c in children])
    today = jst(now).date()
    days = [(d.isoformat(), day_label(d)) for d in
            (today + timedelta(days=i) for i in range(_DAYS_OFFERED))]
    sections: list[dict[str, Any]] = []
    for c in children:
        settings = c.settings
        sections.append({
            "child": c,
            "closed": "" if settings is None or settings.accepts(now) else str(
                ReportClosed(settings)
            ),
            "health": question_fields(settings.health_questions, {}, {}) if settings else [],
            "reports": [_shown(r) for r in reports if r.account_id == c.account_id],
        })
    return templates.TemplateResponse(
        request, "report.html",
        {"title": TITLE, "action": f"/report/{token}", "sections": sections, "days": days,
         "kinds": [k for k in ReportKind if k is not ReportKind.HEALTH],
         "notice": notice, "error": error, "problems": problems or {}},
        status_code=status,
    )


def _shown(r: OpenReport) -> dict[str, Any]:
    return {"r": r, "days": days_label(r.first_day, r.last_day),
            "first": r.first_day.isoformat(), "last": r.last_day.isoformat()}


def _day(text: object, what: str) -> date:
    if not isinstance(text, str) or len(text) != 10:
        raise InputError(f"{what}を選んでください (choose a day)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{what}を選んでください (choose a day)") from None


def _time(text: object) -> time | None:
    """「HH:MM」 from the form's time field (what every phone's picker sends); None if empty."""
    if not text:
        return None
    if not isinstance(text, str) or len(text) > 8:
        raise InputError("時刻は 8:30 のように入れてください (a time such as 08:30)")
    try:
        return time.fromisoformat(text.strip().zfill(5))
    except ValueError:
        raise InputError("時刻は 8:30 のように入れてください (a time such as 08:30)") from None


def _id(text: object) -> int:
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InputError("お子さまを選び直してください (not a child of this link)")
    return int(text)


@router.get("/report/{token}", response_class=HTMLResponse)
async def report_page(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    contact_id = await verified(request, site, REPORT, token, "c")
    if isinstance(contact_id, HTMLResponse):
        return contact_id
    return await _render(request, site, token, contact_id)


@router.post("/report/{token}", response_class=HTMLResponse)
async def make_report(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    contact_id = await verified(request, site, REPORT, token, "c")
    if isinstance(contact_id, HTMLResponse):
        return contact_id
    people = site.people
    form = await request.form()
    try:
        account_id = _id(form.get("_child"))
        kind_text = form.get("_kind")
        if kind_text not in {k.value for k in ReportKind}:
            raise InputError("種別を選んでください (choose absence, late or early leave)")
        kind = ReportKind(str(kind_text))
        first = _day(form.get("_first"), "日付")
        last_text = form.get("_last")
        last = _day(last_text, "終わりの日") if last_text else None
        reason = form.get("_reason")
        note = form.get("_note", "")
        at_time = _time(form.get("_time")) if kind in TIME_NEEDED else None
        report = NewReport(
            account_id, kind, first, last,
            reason=reason if isinstance(reason, str) and reason else None,
            note=note if isinstance(note, str) else "",
            answers={
                k: [v for v in form.getlist(k) if isinstance(v, str)]
                for k in form.keys() if not k.startswith("_")
            } if kind is ReportKind.HEALTH else {},
            at_time=at_time,
        )
        correcting = form.get("_report")
        if correcting:
            done = await correct_report(people, contact_id, _id(correcting), report)
            action = "訂正しました"
        else:
            done = await submit_report(people, contact_id, report)
            action = "受け付けました"
    except ReportClosed as exc:
        return await _render(request, site, token, contact_id, error=str(exc), status=403)
    except AnswerError as exc:
        return await _render(request, site, token, contact_id, status=400,
                             error="健康連絡の回答に不備があります。", problems=exc.problems)
    except InputError as exc:
        return await _render(request, site, token, contact_id, error=str(exc), status=400)
    child = await _child(site, contact_id, account_id)
    await send_confirmation(
        site.queue, site.settings, done.confirm_to,
        Confirmation(child, kind, first, last or first, report.reason, action),
        people.clock.now(),
    )
    what = Confirmation(child, kind, first, last or first, report.reason, action).what
    return await _render(request, site, token, contact_id, notice=f"{what}を{action}。{_SENT}")


async def _child(site: Site, contact_id: int, account_id: int) -> str:
    found: list[Child] = [
        c for c in await children_of(site.people, contact_id) if c.account_id == account_id
    ]
    return found[0].name if found else ""


@router.post("/report/{token}/{report_id}/withdraw", response_class=HTMLResponse)
async def withdraw(
    token: str, report_id: int, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    contact_id = await verified(request, site, REPORT, token, "c")
    if isinstance(contact_id, HTMLResponse):
        return contact_id
    people = site.people
    children = await children_of(people, contact_id)
    mine = [r for r in await open_reports(people, [c.account_id for c in children])
            if r.id == report_id]
    try:
        if not mine:
            # Another family's report, a withdrawn one or a made-up id: said the same way.
            raise InputError("この連絡は見つからないか、取り消し済みです (no such report)")
        done = await withdraw_report(people, contact_id, report_id)
    except ReportClosed as exc:
        return await _render(request, site, token, contact_id, error=str(exc), status=403)
    except InputError as exc:
        return await _render(request, site, token, contact_id, error=str(exc), status=400)
    r = mine[0]
    name = next(c.name for c in children if c.account_id == r.account_id)
    await send_confirmation(
        site.queue, site.settings, done.confirm_to,
        Confirmation(name, r.kind, r.first_day, r.last_day, r.reason, "取り消しました"),
        people.clock.now(),
    )
    what = Confirmation(name, r.kind, r.first_day, r.last_day, r.reason, "").what
    return await _render(
        request, site, token, contact_id, notice=f"{what}を取り消しました。{_SENT}"
    )
