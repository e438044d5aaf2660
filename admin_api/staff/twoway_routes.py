"""Two-way for staff: who has read, survey totals and answers (CSV), reminders, replies;
absence/lateness reports and health notes (list, CSV, the "new" badge, seen), the school's
report settings, and where a teacher is told of new reports.

Rights, on every endpoint: a broadcast's follow-up is for whoever may see the broadcast (the
board, its school's administrators, the teacher who made it); grade and class filters are
checked as sending to them would be. Reports: the board names a school, a school's
administrator sees their school, a teacher their own classes only. Anything outside is 403,
an unknown or invisible broadcast 404, and reading answers, replies or reports is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from admin_api.staff.deps import Actor, Api, StaffApi, audited, public_url_for
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import IdPath, IdQuery
from admin_api.staff.twoway_schemas import (
    AccountReadOut,
    AccountReadPage,
    ClassReadsOut,
    NotifyAddressIn,
    NotifyAddressOut,
    QuestionOut,
    QuestionTotalOut,
    ReadsOut,
    RemindIn,
    RemindOut,
    ReplyList,
    ReplyOut,
    ReportCountOut,
    ReportKindName,
    ReportOut,
    ReportPageOut,
    ReportSettingsIn,
    ReportSettingsOut,
    ResponseOut,
    ResponsePage,
    SurveyTotalsOut,
    hour_minute,
    question_of,
)
from engine.people import Audience
from engine.platform.errors import InputError
from engine.staff import follow, reminding
from engine.staff.models import ActorKind, Principal, RightsError, Role
from engine.staff.rights import check_audience, not_found, require_admin_of
from engine.twoway import (
    Report,
    ReportFilter,
    ReportKind,
    list_reports,
    read_by_class,
    replies_of,
    report_settings,
    reports_csv,
    set_report_settings,
    survey_csv,
    survey_of,
    survey_totals,
)
from engine.twoway.notify import notify_teachers_of, set_notify_address, set_notify_teachers
from engine.twoway.questions import Question, answer_text
from engine.twoway.staff_views import (
    mark_reports_seen,
    read_page,
    reports_seen_at,
    response_page,
    unseen_report_count,
)

router = APIRouter(
    prefix="/api/staff", tags=["two-way"], route_class=StaffRoute, responses=ERROR_RESPONSES
)

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM"}
}


def _csv(data: bytes, name: str) -> Response:
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _visible(api: StaffApi, actor: Principal, broadcast_id: int) -> None:
    await follow.visible_broadcast(api.staff.pool, actor, broadcast_id, api.staff.now())


# --- read confirmation -------------------------------------------------------------------

@router.get("/broadcasts/{broadcast_id}/reads", response_model=ReadsOut,
            summary="既読の状況 (組ごと) / reads per class")
async def reads(broadcast_id: IdPath, actor: Actor, api: Api) -> ReadsOut:
    """Accounts the broadcast was for and how many have read, per class, read live."""
    await _visible(api, actor, broadcast_id)
    classes = await read_by_class(api.people, broadcast_id)
    total = sum(c.accounts for c in classes)
    read = sum(c.read for c in classes)
    return ReadsOut(
        broadcast_id=broadcast_id, accounts=total, read=read, unread=total - read,
        classes=[ClassReadsOut(class_id=c.class_id, grade=c.grade, class_name=c.class_name,
                               accounts=c.accounts, read=c.read, unread=c.unread)
                 for c in classes],
    )


async def _check_filters(
    api: StaffApi, actor: Principal, grade_id: int | None, class_id: int | None
) -> None:
    """Filtering by a grade or class is counting its people: the same rights as sending."""
    if grade_id is not None or class_id is not None:
        await check_audience(api.staff.pool, actor, Audience(
            grades=(grade_id,) if grade_id is not None else (),
            classes=(class_id,) if class_id is not None else (),
        ))


@router.get("/broadcasts/{broadcast_id}/reads/accounts", response_model=AccountReadPage,
            summary="既読・未読の一覧 / who has read")
async def read_accounts(
    broadcast_id: IdPath, actor: Actor, api: Api, read: bool | None = None,
    grade_id: IdQuery = None, class_id: IdQuery = None, limit: Limit = 100, offset: Offset = 0,
) -> AccountReadPage:
    """Each account with its first read time; ``read=false``: those not read yet."""

    async def page() -> AccountReadPage:
        await _visible(api, actor, broadcast_id)
        await _check_filters(api, actor, grade_id, class_id)
        p = await read_page(api.people, broadcast_id, read, grade_id, class_id, limit, offset)
        return AccountReadPage(total=p.total, items=[
            AccountReadOut(account_id=a.account_id, class_id=a.class_id, grade=a.grade,
                           class_name=a.class_name, number=a.number, name=a.name,
                           read_at=a.read_at)
            for a in p.accounts
        ])

    return await audited(api, actor, "twoway.reads", f"broadcast {broadcast_id}", page())


# --- surveys -------------------------------------------------------------------------------

@router.get("/broadcasts/{broadcast_id}/survey", response_model=SurveyTotalsOut,
            summary="アンケートの集計 / survey totals")
async def survey(broadcast_id: IdPath, actor: Actor, api: Api) -> SurveyTotalsOut:
    """Respondents, answers per option, and the sum of number questions (the head count)."""
    await _visible(api, actor, broadcast_id)
    s = await survey_of(api.people, broadcast_id)
    if s is None:
        raise not_found(f"配信 {broadcast_id} の質問")
    t = await survey_totals(api.people, broadcast_id)
    return SurveyTotalsOut(
        broadcast_id=broadcast_id, deadline=s.deadline, respondents=t.respondents,
        questions=[QuestionTotalOut(question=QuestionOut.of(q.question), answered=q.answered,
                                    options=list(q.options), total=q.total)
                   for q in t.questions],
    )


@router.get("/broadcasts/{broadcast_id}/survey/answers", response_model=ResponsePage,
            summary="回答の一覧 / answers per account")
async def survey_answers(
    broadcast_id: IdPath, actor: Actor, api: Api, limit: Limit = 100, offset: Offset = 0
) -> ResponsePage:
    async def page() -> ResponsePage:
        await _visible(api, actor, broadcast_id)
        s = await survey_of(api.people, broadcast_id)
        if s is None:
            raise not_found(f"配信 {broadcast_id} の質問")
        total, rows = await response_page(api.people, broadcast_id, limit, offset)
        return ResponsePage(total=total, items=[
            ResponseOut(account_id=r.account_id, grade=r.grade, class_name=r.class_name,
                        number=r.number, name=r.name, answered_at=r.answered_at,
                        answers={q.key: answer_text(q, r.answers[q.key])
                                 for q in s.questions if q.key in r.answers})
            for r in rows
        ])

    return await audited(api, actor, "twoway.answers", f"broadcast {broadcast_id}", page())


@router.get("/broadcasts/{broadcast_id}/survey/answers.csv", response_class=Response,
            responses=CSV, summary="回答の CSV / answers as CSV")
async def survey_answers_csv(broadcast_id: IdPath, actor: Actor, api: Api) -> Response:
    async def every() -> bytes:
        await _visible(api, actor, broadcast_id)
        if await survey_of(api.people, broadcast_id) is None:
            raise not_found(f"配信 {broadcast_id} の質問")
        return await survey_csv(api.people, broadcast_id)

    data = await audited(api, actor, "twoway.answers_csv", f"broadcast {broadcast_id}", every())
    return _csv(data, f"answers-{broadcast_id}.csv")


@router.post("/broadcasts/{broadcast_id}/remind", response_model=RemindOut, status_code=201,
             summary="未確認・未回答の人への再通知 / remind")
async def remind(
    broadcast_id: IdPath, body: RemindIn, actor: Actor, api: Api, request: Request
) -> RemindOut:
    """A new broadcast linked to this one, to the addresses that have not read
    (``purpose=read``) or not answered (``survey``), each mail with its personal page link."""
    made = await audited(
        api, actor, "twoway.remind", f"broadcast {broadcast_id}",
        reminding.remind(api.staff, api.people, api.queue, actor, broadcast_id, body.purpose,
                         api.max_age, body.subject, body.body),
        object_of=lambda r: f"broadcast {r.created.broadcast_id} (reminder of {broadcast_id})",
    )
    url = public_url_for(request, api, "broadcast_status", broadcast_id=made.created.broadcast_id)
    return RemindOut(broadcast_id=made.created.broadcast_id, recipients=made.created.recipients,
                     left=made.left, summary_ja=made.created.summary_ja, status_url=url)


# --- replies -------------------------------------------------------------------------------

@router.get("/broadcasts/{broadcast_id}/replies", response_model=ReplyList,
            summary="返信メール / replies")
async def replies(broadcast_id: IdPath, actor: Actor, api: Api) -> ReplyList:
    """Guardians' replies to the broadcast's mails, opened (they are sealed at rest)."""

    async def every() -> ReplyList:
        await _visible(api, actor, broadcast_id)
        rows = await replies_of(api.people, broadcast_id)
        return ReplyList(broadcast_id=broadcast_id, items=[
            ReplyOut(id=r.id, delivery_id=r.delivery_id, from_recipient=r.from_recipient,
                     sender=r.sender, subject=r.subject, body=r.body, received_at=r.received_at)
            for r in rows
        ])

    return await audited(api, actor, "twoway.replies", f"broadcast {broadcast_id}", every())


# --- reports -------------------------------------------------------------------------------

async def _school(api: StaffApi, actor: Principal, school_id: int | None) -> int:
    """The school the caller asks about, within their rights."""
    if actor.role is Role.BOARD:
        if school_id is None:
            raise InputError("school_id を指定してください (name the school: school_id)")
        await check_audience(api.staff.pool, actor, Audience(schools=(school_id,)))
        return school_id
    own = actor.organisation_id
    assert own is not None
    if school_id is not None and school_id != own:
        raise RightsError("他校の連絡は見られません (another school's reports)")
    return own


async def _report_scope(
    api: StaffApi, actor: Principal, school_id: int | None, grade_id: int | None,
    class_id: int | None,
) -> tuple[int, int | None]:
    """(school, class filter): a teacher is held to their own classes."""
    school = await _school(api, actor, school_id)
    await _check_filters(api, actor, grade_id, class_id)
    if actor.role is Role.TEACHER and class_id is None:
        if len(actor.class_ids) != 1:
            if not actor.class_ids:
                raise RightsError("受け持ちの組がありません (you have no class)")
            raise InputError("組を指定してください (name one of your classes: class_id)")
        class_id = next(iter(actor.class_ids))
    return school, class_id


def _report_out(r: Report, questions: Sequence[Question]) -> ReportOut:
    return ReportOut(
        id=r.id, account_id=r.account_id, grade=r.grade, class_name=r.class_name,
        number=r.number, name=r.name, kind=r.kind.value, kind_label_ja=r.kind.label_ja,
        first_day=r.first_day, last_day=r.last_day, at_time=r.at_time, reason=r.reason,
        note=r.note, answers={q.key: answer_text(q, r.answers[q.key]) for q in questions
                 if q.key in r.answers},
        state=r.state,  # type: ignore[arg-type]
        created_at=r.created_at, updated_at=r.updated_at,
    )


@router.get("/reports", response_model=ReportPageOut,
            summary="欠席・遅刻・早退・健康連絡の一覧 / reports")
async def reports(
    actor: Actor, api: Api, school_id: IdQuery = None, first_day: date | None = None,
    last_day: date | None = None, grade_id: IdQuery = None, class_id: IdQuery = None,
    kind: ReportKindName | None = None, include_withdrawn: bool = False,
    limit: Limit = 100, offset: Offset = 0,
) -> ReportPageOut:
    """Reports covering any day from ``first_day`` to ``last_day``, by day and class."""

    async def page() -> ReportPageOut:
        school, klass = await _report_scope(api, actor, school_id, grade_id, class_id)
        f = ReportFilter(first_day, last_day, grade_id, klass,
                         ReportKind(kind) if kind else None, include_withdrawn)
        p = await list_reports(api.people, school, f, limit, offset)
        settings = await report_settings(api.staff.pool, school)
        questions = settings.all_questions if settings else ()
        return ReportPageOut(total=p.total, items=[_report_out(r, questions) for r in p.reports])

    return await audited(api, actor, "twoway.reports", f"school {school_id or ''}", page())


@router.get("/reports.csv", response_class=Response, responses=CSV,
            summary="連絡の CSV / reports as CSV")
async def reports_as_csv(
    actor: Actor, api: Api, school_id: IdQuery = None, first_day: date | None = None,
    last_day: date | None = None, grade_id: IdQuery = None, class_id: IdQuery = None,
    kind: ReportKindName | None = None, include_withdrawn: bool = False,
) -> Response:
    async def every() -> bytes:
        school, klass = await _report_scope(api, actor, school_id, grade_id, class_id)
        f = ReportFilter(first_day, last_day, grade_id, klass,
                         ReportKind(kind) if kind else None, include_withdrawn)
        return await reports_csv(api.people, school, f)

    data = await audited(api, actor, "twoway.reports_csv", f"school {school_id or ''}", every())
    return _csv(data, "reports.csv")


async def _count(
    api: StaffApi, actor: Principal, school_id: int | None, since: datetime | None
) -> ReportCountOut:
    school = await _school(api, actor, school_id)
    seen = None
    if since is None and actor.kind is ActorKind.STAFF and actor.id is not None:
        seen = await reports_seen_at(api.staff.pool, actor.id)
    classes = actor.class_ids if actor.role is Role.TEACHER else None
    n = await unseen_report_count(api.staff.pool, school, since or seen, classes)
    return ReportCountOut(school_id=school, new=n, seen_at=since or seen)


@router.get("/reports/new", response_model=ReportCountOut,
            summary="新しい連絡の件数 / new reports (the screens' badge)")
async def reports_new(
    actor: Actor, api: Api, school_id: IdQuery = None, since: datetime | None = None
) -> ReportCountOut:
    """Reports made or changed since ``since``, or since the caller last marked them seen
    (``POST /reports/seen``); a teacher counts their own classes."""
    return await _count(api, actor, school_id, since)


@router.post("/reports/seen", response_model=ReportCountOut, summary="既読にする / mark seen")
async def reports_seen(actor: Actor, api: Api, school_id: IdQuery = None) -> ReportCountOut:
    if actor.kind is not ActorKind.STAFF or actor.id is None:
        raise InputError("職員のログインで使います (for signed-in staff, not API keys)")
    await _school(api, actor, school_id)
    await mark_reports_seen(api.staff.pool, actor.id, api.staff.now())
    return await _count(api, actor, school_id, None)


async def _settings_out(api: StaffApi, school: int) -> ReportSettingsOut:
    s = await report_settings(api.staff.pool, school)
    if s is None:
        raise not_found(f"学校 {school} の連絡の設定")
    return ReportSettingsOut(
        school_id=school, opens=hour_minute(s.opens), closes=hour_minute(s.closes),
        reasons=list(s.reasons),
        health_questions=[QuestionOut.of(q) for q in s.health_questions],
        notify_teachers=await notify_teachers_of(api.staff.pool, school),
    )


@router.get("/reports/settings", response_model=ReportSettingsOut,
            summary="連絡の受付設定 / report settings")
async def get_report_settings(
    actor: Actor, api: Api, school_id: IdQuery = None
) -> ReportSettingsOut:
    school = await _school(api, actor, school_id)
    await require_admin_of(api.staff.pool, actor, school)
    return await _settings_out(api, school)


@router.put("/reports/settings", response_model=ReportSettingsOut,
            summary="連絡の受付設定の変更 / change report settings")
async def put_report_settings(
    body: ReportSettingsIn, actor: Actor, api: Api, school_id: IdQuery = None
) -> ReportSettingsOut:
    """Hours (Japan time), reasons, health questions, and whether teachers are mailed."""

    async def change() -> int:
        school = await _school(api, actor, school_id)
        await require_admin_of(api.staff.pool, actor, school)
        await set_report_settings(
            api.people, school, time.fromisoformat(body.opens), time.fromisoformat(body.closes),
            body.reasons,
            [question_of(q) for q in body.health_questions],
        )
        await set_notify_teachers(api.staff.pool, school, body.notify_teachers, api.staff.now())
        return school

    school = await audited(api, actor, "twoway.report_settings", f"school {school_id or ''}",
                           change(), object_of=lambda s: f"school {s}")
    return await _settings_out(api, school)


@router.put("/reports/notify-address", response_model=NotifyAddressOut,
            summary="新しい連絡のお知らせ先 / where I am told of new reports")
async def put_notify_address(body: NotifyAddressIn, actor: Actor, api: Api) -> NotifyAddressOut:
    """The caller's own address for the teachers' mail (null: none)."""
    if actor.kind is not ActorKind.STAFF or actor.id is None:
        raise InputError("職員のログインで使います (for signed-in staff, not API keys)")
    staff_id = actor.id
    await audited(api, actor, "twoway.notify_address", f"staff {staff_id}",
                  set_notify_address(api.people, staff_id, body.address))
    return NotifyAddressOut(staff_id=staff_id, has_address=bool(body.address))
