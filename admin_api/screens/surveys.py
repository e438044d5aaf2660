"""A broadcast's survey: totals with CSS bar charts and the head counts (sums of number
questions), the answers per child (paged), the answers as CSV and a reminder to those who have
not answered (``engine.staff.reminding.remind``, as ``POST /api/staff/.../remind``).

Whoever may see the broadcast (``follow.visible_broadcast``) may see its survey; reading the
answers, the CSV and reminding are audited under the API's action names.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.reports import csv_file
from admin_api.screens.web import ScreenRoute, Visit, see_other, visit
from engine.platform.errors import InputError
from engine.staff import follow, reminding
from engine.staff.rights import not_found
from engine.twoway import Survey, survey_csv, survey_of, survey_totals
from engine.twoway.questions import answer_text
from engine.twoway.staff_views import response_page

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50
BroadcastId = Annotated[int, Path(ge=1, le=2**62)]


async def _survey(v: Visit, broadcast_id: int) -> tuple[follow.BroadcastRow, Survey]:
    b = await follow.visible_broadcast(v.api.staff.pool, v.actor, broadcast_id,
                                       v.api.staff.now())
    s = await survey_of(v.api.people, broadcast_id)
    if s is None:
        raise not_found(f"配信 {broadcast_id} の質問")
    return b, s


def _bars(counts: tuple[int, ...], labels: tuple[str, ...]) -> list[dict[str, Any]]:
    top = max(counts, default=0) or 1
    total = sum(counts) or 1
    return [{"label": label, "n": n, "width": round(100 * n / top),
             "share": round(100 * n / total)} for label, n in zip(labels, counts, strict=False)]


@router.get("/broadcasts/{broadcast_id}/survey", response_class=HTMLResponse)
async def survey_page(
    request: Request, broadcast_id: BroadcastId,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1, reminded: int = 0,
) -> Response:
    v = await visit(request)
    api = v.api
    b, s = await _survey(v, broadcast_id)
    t = await survey_totals(api.people, broadcast_id)
    questions = [
        {"q": q.question, "answered": q.answered,
         "bars": _bars(q.options, q.question.options) if q.options else [],
         "total": q.total}
        for q in t.questions
    ]
    total, rows = await api.staff.audited(
        v.actor, "twoway.answers", f"broadcast {broadcast_id}",
        response_page(api.people, broadcast_id, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        detail="(screens)",
    )
    answers = [
        {"r": r, "cells": [answer_text(q, r.answers[q.key]) if q.key in r.answers else ""
                           for q in s.questions]}
        for r in rows
    ]
    return v.page(
        "survey.html", title=f"アンケート: {b.subject}", b=b, survey=s,
        open=s.is_open(api.staff.now()), respondents=t.respondents, questions=questions,
        answers=answers, total=total, page=page, pages=max(1, -(-total // PAGE_SIZE)),
        reminded=reminded, error="",
    )


@router.get("/broadcasts/{broadcast_id}/survey/answers.csv")
async def survey_answers_csv(request: Request, broadcast_id: BroadcastId) -> Response:
    v = await visit(request)

    async def every() -> bytes:
        await _survey(v, broadcast_id)
        return await survey_csv(v.api.people, broadcast_id)

    data = await v.api.staff.audited(v.actor, "twoway.answers_csv", f"broadcast {broadcast_id}",
                                     every(), detail="(screens)")
    return csv_file(data, f"answers-{broadcast_id}.csv")


@router.post("/broadcasts/{broadcast_id}/survey/remind", response_class=HTMLResponse)
async def remind_unanswered(request: Request, broadcast_id: BroadcastId) -> Response:
    v = await visit(request)
    await v.form()
    api = v.api
    try:
        made = await api.staff.audited(
            v.actor, "twoway.remind", f"broadcast {broadcast_id}",
            reminding.remind(api.staff, api.people, api.queue, v.actor, broadcast_id, "survey",
                             api.max_age),
            object_of=lambda r: f"broadcast {r.created.broadcast_id} (reminder of "
                                f"{broadcast_id})",
            detail="(screens)",
        )
    except InputError as exc:
        await _survey(v, broadcast_id)
        return v.page("message.html", 422, title="再通知できません", text=str(exc))
    return see_other(f"/staff/broadcasts/{made.created.broadcast_id}")
