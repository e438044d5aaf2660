"""Absence, lateness and early-leave reports and health notes (欠席・遅刻・早退・健康連絡):
``/staff/reports`` lists one day's reports of a school (a class, a kind), the ones made or
changed since the staff member last marked them seen flagged 「新着」; ``reports.csv`` the
same as CSV (the engine's: UTF-8 with BOM, Japan time); ``POST reports/seen`` marks them seen.

Rights as the staff API's ``twoway_routes``: the board picks one of its schools, a school's
administrator sees their school, a teacher their own classes only; the schools and classes
offered are ``engine.staff.organisation``'s, and anything else named in the query is refused
(403). Reading the list or the CSV is audited under the API's action names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import ScreenRoute, Visit, see_other, visit
from engine.platform.clock import jst
from engine.staff.models import ActorKind, Principal, RightsError, Role
from engine.staff.organisation import ClassUnit, OrgUnit, organisation
from engine.staff.rights import not_found
from engine.twoway import Report, ReportFilter, ReportKind, list_reports, reports_csv
from engine.twoway.questions import answer_text
from engine.twoway.reports import report_settings
from engine.twoway.staff_views import (
    mark_reports_seen,
    reports_seen_at,
    unseen_report_count,
    unseen_reports_by_school,
)

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50
Id = Annotated[int | None, Query(ge=1, le=2**62)]
KINDS = {k.value: k.label_ja for k in ReportKind}
# The fields every report has; any other (e.g. a time of arrival or leaving, when the engine
# gives one) is shown as a column of its own.
_KNOWN = {f.name for f in dataclasses.fields(Report)}
_EXTRA_LABELS = {"arrival": "登校予定", "arrival_time": "登校予定", "arrives_at": "登校予定",
                 "leaving": "下校予定", "leaving_time": "下校予定", "leaves_at": "下校予定"}


@dataclass(frozen=True)
class Scope:
    """Whose reports: one school (of ``schools``) and a class of ``classes`` or all."""

    school: int
    class_id: int | None
    schools: list[OrgUnit]
    classes: list[ClassUnit]


async def scope(v: Visit, school_id: int | None, class_id: int | None) -> Scope:
    actor = v.actor
    org = await organisation(v.api.staff.pool, actor, v.api.staff.now())
    if actor.role is Role.BOARD:
        if school_id is None:
            if not org.schools:
                raise not_found("学校")
            school_id = org.schools[0].id
        elif school_id not in {s.id for s in org.schools}:
            raise not_found(f"学校 {school_id} ")
        school = school_id
    else:
        if actor.organisation_id is None:
            raise RightsError("学校の職員ではありません (not a school's staff)")
        school = actor.organisation_id
        if school_id is not None and school_id != school:
            raise RightsError("他校の連絡は見られません (another school's reports)")
    classes = [c for c in org.classes if c.school_id == school]
    if class_id is not None and class_id not in {c.id for c in classes}:
        raise RightsError("この組の連絡は見られません (not within your rights: class)")
    if actor.role is Role.TEACHER and class_id is None:
        if not classes:
            raise RightsError("受け持ちの組がありません (you have no class)")
        class_id = classes[0].id
    return Scope(school, class_id, org.schools if actor.role is Role.BOARD else [], classes)


def csv_file(data: bytes, name: str) -> Response:
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _kind(kind: str) -> ReportKind | None:
    return ReportKind(kind) if kind in KINDS else None


def _extras(r: Report) -> dict[str, str]:
    """Columns beyond the known fields (times of arrival or leaving), loosely."""
    out: dict[str, str] = {}
    for name in (f.name for f in dataclasses.fields(r) if f.name not in _KNOWN):
        value = getattr(r, name)
        if isinstance(value, datetime):
            out[_EXTRA_LABELS.get(name, name)] = f"{jst(value):%H:%M}"
        elif isinstance(value, time):
            out[_EXTRA_LABELS.get(name, name)] = f"{value:%H:%M}"
    return out


async def new_reports(v: Visit) -> int:
    """The dashboard's badge: reports made or changed since the staff member marked them seen
    (a teacher's classes only; the board's over all its schools)."""
    actor = v.actor
    if actor.kind is not ActorKind.STAFF or actor.id is None:
        return 0
    pool = v.api.staff.pool
    seen = await reports_seen_at(pool, actor.id)
    if actor.role is Role.BOARD:
        org = await organisation(pool, actor, v.api.staff.now())
        return sum((await unseen_reports_by_school(pool, [s.id for s in org.schools],
                                                   seen)).values())
    if actor.organisation_id is None:
        return 0
    classes = actor.class_ids if actor.role is Role.TEACHER else None
    if classes is not None and not classes:
        return 0
    return await unseen_report_count(pool, actor.organisation_id, seen, classes)


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(
    request: Request, school_id: Id = None, class_id: Id = None, day: date | None = None,
    kind: str = "", page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    v = await visit(request)
    api, actor = v.api, v.actor
    s = await scope(v, school_id, class_id)
    day = day or jst(api.staff.now()).date()
    f = ReportFilter(day, day, None, s.class_id, _kind(kind))
    found = await api.staff.audited(
        actor, "twoway.reports", f"school {s.school}",
        list_reports(api.people, s.school, f, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        detail=f"day={day} (screens)",
    )
    seen = await reports_seen_at(api.staff.pool, actor.id) if actor.id is not None else None
    settings = await report_settings(api.staff.pool, s.school)
    questions = settings.all_questions if settings else ()
    rows: list[dict[str, Any]] = [
        {"r": r, "new": seen is None or r.updated_at > seen, "extras": _extras(r),
         "answers": [f"{q.label}: {answer_text(q, r.answers[q.key])}"
                     for q in questions if q.key in r.answers]}
        for r in found.reports
    ]
    extra_columns = sorted({k for row in rows for k in row["extras"]})
    filters = {"school_id": s.school if s.schools else None, "class_id": s.class_id,
               "kind": kind if kind in KINDS else ""}
    return v.page(
        "reports.html", title="欠席・遅刻・早退・健康連絡", scope=s, rows=rows,
        extra_columns=extra_columns, total=found.total, day=day, kind=filters["kind"],
        kinds=KINDS, page=page, pages=max(1, -(-found.total // PAGE_SIZE)),
        query=_query(**filters, day=day.isoformat()),
        prev_day=_query(**filters, day=(day - timedelta(days=1)).isoformat()),
        next_day=_query(**filters, day=(day + timedelta(days=1)).isoformat()),
        teacher=actor.role is Role.TEACHER,
    )


@router.get("/reports.csv")
async def reports_page_csv(
    request: Request, school_id: Id = None, class_id: Id = None, day: date | None = None,
    kind: str = "",
) -> Response:
    v = await visit(request)
    api = v.api
    s = await scope(v, school_id, class_id)
    day = day or jst(api.staff.now()).date()
    f = ReportFilter(day, day, None, s.class_id, _kind(kind))
    data = await api.staff.audited(
        v.actor, "twoway.reports_csv", f"school {s.school}",
        reports_csv(api.people, s.school, f), detail=f"day={day} (screens)",
    )
    return csv_file(data, f"reports-{day}.csv")


@router.post("/reports/seen")
async def reports_seen(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    actor: Principal = v.actor
    if actor.id is not None:
        await mark_reports_seen(v.api.staff.pool, actor.id, v.api.staff.now())
    back = form.get("back")
    # Back to the same filters: only the list's own parameters, re-encoded.
    kept = [(k, x) for k, x in parse_qsl(back if isinstance(back, str) else "")[:10]
            if k in ("school_id", "class_id", "day", "kind", "page")]
    return see_other("/staff/reports" + (f"?{urlencode(kept)}" if kept else ""))
