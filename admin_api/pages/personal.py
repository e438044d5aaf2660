"""The personal page every mail of a two-way broadcast links to: ``/m/<token>``.

The token names the delivery (purpose ``page``, engine/message/links.py; a reminder's
delivery stands for the first broadcast's, engine/twoway/personal.py). The page shows the
mail's subject and text, records 「確認しました」 when the broadcast asks for it, offers the
survey per child until the deadline, links to the report page when the contact's school takes
reports, and includes the attachments section (``_files.html``) when that template exists.

Opening the page records the read (``GET``), unless the request says it is a prefetch
(``Sec-Purpose``/``Purpose: prefetch``); the page also has a 「確認しました」 button
(``POST /m/<token>/read``) for a read a prefetch skipped. Link scanners that fetch like a
browser can still record a read: docs/twoway.md says so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import message_page, question_fields
from admin_api.pages.page_guard import verified
from admin_api.site import PAGE, REPORT, Site, site_of
from admin_api.templating import templates
from engine.message.compose import LINK_LIFETIME
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.staff import attachments
from engine.twoway import (
    AnswerError,
    SurveyClosed,
    answers_for,
    record_read,
    submit_answers,
)
from engine.twoway.personal import PageView, open_page

router = APIRouter(include_in_schema=False)
GONE = "このお知らせの記録はもう残っていません。"
LEFT = (
    "このアドレスへの配信は停止されているため、このページは表示できません。配信を再開するときは、"
    "メールの末尾の「配信の設定」のリンクからお手続きください。 (this address has left the mailing)"
)
_CHILD = "_child"


def _prefetch(request: Request) -> bool:
    purpose = request.headers.get("sec-purpose", "") + request.headers.get("purpose", "")
    return "prefetch" in purpose.lower() or request.headers.get("x-moz", "") == "prefetch"


async def _view(request: Request, site: Site, token: str) -> PageView | HTMLResponse:
    delivery_id = await verified(request, site, PAGE, token, "d")
    if isinstance(delivery_id, HTMLResponse):
        return delivery_id
    view = await open_page(site.people, delivery_id, site.facts)
    if view is None:
        return message_page(request, "お知らせ", GONE, 410)
    if view.left:
        # Replaying an old mail's link after leaving reads, answers and shows nothing, as the
        # files (attachments.GONE_LEFT) and report pages refuse a contact who left.
        return message_page(request, "お知らせ", LEFT, 410)
    return view


async def _render(
    request: Request, site: Site, token: str, view: PageView, *, notice: str = "",
    error: str = "", problems: dict[str, str] | None = None, posted_child: int | None = None,
    posted: dict[str, list[str]] | None = None, status: int = 200,
) -> HTMLResponse:
    people = site.people
    now = people.clock.now()
    forms: list[dict[str, Any]] = []
    survey = view.survey
    if survey is not None:
        children: list[tuple[int | None, str]] = list(view.children) or [(None, "")]
        for account_id, name in children:
            try:
                stored = await answers_for(people, view.delivery_id, account_id)
            except InputError:
                continue  # an address given by hand: nobody to answer for
            mine = posted if posted is not None and account_id == posted_child else {}
            forms.append({
                "child": account_id, "name": name,
                "answered": bool(stored), "fields": question_fields(survey.questions, stored, mine),
                "problems": (problems or {}) if account_id == posted_child else {},
            })
    report_url = ""
    if view.contact_id is not None and view.takes_reports:
        report_token = site.links.token(REPORT, view.contact_id, now + LINK_LIFETIME)
        report_url = f"/report/{report_token}"
    # The broadcast's attachments (engine/staff/attachments.py), through this page's links.
    files: list[attachments.PageFile] = []
    files_note = ""
    if view.has_files:
        try:
            files = await attachments.page_files(people, site.queue, view.delivery_id)
        except attachments.FileGone as exc:
            files_note = str(exc)
    return templates.TemplateResponse(
        request, "personal.html",
        {
            "title": view.subject, "view": view, "action": f"/m/{token}", "token": token,
            "read_at": _when(view.read_at), "notice": notice, "error": error,
            "survey": survey, "survey_open": survey is not None and survey.is_open(now),
            "deadline": _when(survey.deadline) if survey is not None else "",
            "forms": forms, "report_url": report_url,
            "files": files, "files_url": f"/m/{token}/files", "files_note": files_note,
        },
        status_code=status,
    )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{jst(moment):%m月%d日 %H:%M}"


@router.get("/m/{token}", response_class=HTMLResponse)
async def personal_page(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    view = await _view(request, site, token)
    if isinstance(view, HTMLResponse):
        return view
    if view.read_requested and view.read_at is None and not _prefetch(request):
        view = await _read(site, view)
    return await _render(request, site, token, view)


async def _read(site: Site, view: PageView) -> PageView:
    return replace(view, read_at=await record_read(site.people, view.delivery_id))


@router.post("/m/{token}/read", response_class=HTMLResponse)
async def confirm_read(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    view = await _view(request, site, token)
    if isinstance(view, HTMLResponse):
        return view
    if not view.read_requested:
        return await _render(request, site, token, view, status=400,
                             error="このお知らせには確認の依頼がありません。")
    view = await _read(site, view)
    return await _render(request, site, token, view, notice="確認しました。ありがとうございます。")


@router.post("/m/{token}/answers", response_class=HTMLResponse)
async def answer(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    view = await _view(request, site, token)
    if isinstance(view, HTMLResponse):
        return view
    form = await request.form()
    posted = {
        k: [v for v in form.getlist(k) if isinstance(v, str)]
        for k in form.keys() if not k.startswith("_")
    }
    child_text = form.get(_CHILD, "")
    child: int | None = None
    if isinstance(child_text, str) and child_text:
        if not child_text.isascii() or not child_text.isdigit() or len(child_text) > 18:
            return await _render(request, site, token, view, status=400,
                                 error="お子さまを選び直してください。 (not a child of this mail)")
        child = int(child_text)
    try:
        await submit_answers(site.people, view.delivery_id, posted, child)
    except SurveyClosed as exc:
        return await _render(request, site, token, view, error=str(exc), status=403)
    except AnswerError as exc:
        return await _render(
            request, site, token, view, error="回答に不備があります。赤字の質問をご確認ください。",
            problems=exc.problems, posted_child=child, posted=posted, status=400,
        )
    except InputError as exc:
        return await _render(request, site, token, view, error=str(exc), status=400)
    if view.read_requested and view.read_at is None:
        view = await _read(site, view)  # answering is reading
    return await _render(
        request, site, token, view,
        notice="回答を受け付けました。締め切りまでは何度でも変更できます。",
    )
