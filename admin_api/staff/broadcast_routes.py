"""Broadcasts for staff: create to an audience (now or at a set time), list, status, cancel,
recipients and their CSV — each within the caller's rights."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from admin_api.staff.deps import Actor, Api, StaffApi, audited, id_url_for, public_url_for
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    AccountRefOut,
    BroadcastCreatedOut,
    BroadcastIn,
    BroadcastOut,
    BroadcastPage,
    BroadcastStatusOut,
    CancelOut,
    CategoryCountOut,
    IdPath,
    IdQuery,
    PriorityName,
    RecipientOut,
    RecipientPage,
    ResendIn,
    StateName,
    Text,
)
from admin_api.staff.twoway_schemas import asking_fields
from engine.people import Audience, Category
from engine.people.recipients import AccountRef, accounts_of, addresses_in
from engine.platform.errors import InputError
from engine.queue import Cancellation, Priority, State
from engine.queue.broadcasts import BROADCAST_STATE_LABELS_JA
from engine.queue.models import STATE_LABELS_JA
from engine.staff import follow, sending
from engine.staff.models import Principal
from engine.staff.rights import check_audience

router = APIRouter(
    prefix="/api/staff/broadcasts", tags=["broadcasts"], route_class=StaffRoute,
    responses=ERROR_RESPONSES,
)


def request_of(body: BroadcastIn, actor: Principal) -> sending.BroadcastRequest:
    a = body.audience
    boards: tuple[int, ...] = ()
    if a.board:
        if actor.board_id is None:
            raise InputError("教育委員会が登録されていません (no board is registered)")
        boards = (actor.board_id,)
    return sending.BroadcastRequest(
        sender=body.sender, subject=body.subject, body=body.body,
        audience=Audience(boards, tuple(a.schools), tuple(a.grades), tuple(a.classes),
                          tuple(a.groups), tuple(a.accounts)),
        category=body.category, priority=Priority[body.priority.upper()], send_at=body.send_at,
        **asking_fields(body),
    )


async def create_broadcast(
    api: StaffApi, actor: Principal, body: BroadcastIn, status_url: str,
    idempotency_key: str | None = None, draft_id: int | None = None,
) -> BroadcastCreatedOut:
    async def make() -> sending.Created:
        return await sending.create(
            api.staff, api.people, api.queue, actor, request_of(body, actor), api.max_age,
            idempotency_key, draft_id,
        )

    made = await audited(
        api, actor, "broadcast.create", "", make(),
        object_of=lambda c: f"broadcast {c.broadcast_id}",
        detail=f"audience={body.audience.model_dump_json(exclude_defaults=True)}"[:300],
    )
    return BroadcastCreatedOut(
        broadcast_id=made.broadcast_id, recipients=made.recipients, replayed=made.replayed,
        summary_ja=made.summary_ja, status_url=status_url.format(id=made.broadcast_id),
    )


@router.post(
    "", response_model=BroadcastCreatedOut, status_code=201, summary="配信の登録 / send"
)
async def create(
    body: BroadcastIn, actor: Actor, api: Api, request: Request
) -> BroadcastCreatedOut:
    """Resolve the audience and store every delivery in one transaction; ``send_at`` in the
    future schedules it (cancel before it with ``/cancel``)."""
    url = id_url_for(request, api, "broadcast_status")
    return await create_broadcast(api, actor, body, url)


def _account_label(a: AccountRef) -> str:
    if a.grade is None:
        return a.name
    return f"{a.name} ({a.grade}年{a.class_name + '組' if a.class_name else ''})"


def broadcast_out(b: follow.BroadcastRow) -> BroadcastOut:
    return BroadcastOut(
        id=b.id, created_at=b.created_at, send_at=b.send_at, sender=b.sender,
        subject=b.subject, priority=b.priority.name.lower(),  # type: ignore[arg-type]
        category=b.category, state=b.state.value, state_label_ja=BROADCAST_STATE_LABELS_JA[b.state],
        recipients=b.recipient_count, suppressed=b.suppressed_count,
        cancelled_at=b.cancelled_at, organisation_id=b.organisation_id, staff_id=b.staff_id,
        by_state={s.value: n for s, n in b.by_state.items()}, resend_of=b.resend_of,
    )


@router.get("", response_model=BroadcastPage, summary="配信の一覧 / list broadcasts")
async def list_broadcasts(
    actor: Actor,
    api: Api,
    category: Category | None = None,
    priority: PriorityName | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    organisation_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> BroadcastPage:
    """Newest first; only the broadcasts the caller may see."""
    f = follow.BroadcastFilter(
        category.value if category else None,
        Priority[priority.upper()] if priority else None, since, until, organisation_id,
    )
    total, rows = await follow.list_broadcasts(
        api.staff.pool, actor, f, api.staff.now(), limit, offset
    )
    return BroadcastPage(total=total, items=[broadcast_out(b) for b in rows])


async def status_of(api: StaffApi, actor: Principal, broadcast_id: int) -> BroadcastStatusOut:
    st = await follow.status(api.staff.pool, actor, broadcast_id, api.staff.now())
    return BroadcastStatusOut(
        broadcast=broadcast_out(st.broadcast), body=st.body, audience=st.audience,
        by_category=[
            CategoryCountOut(
                category=c.category, label_ja=c.label_ja, state=c.state.value, count=c.count
            )
            for c in st.by_category
        ],
        skipped=st.skipped, may_have_arrived=st.may_have_arrived,
    )


@router.get(
    "/{broadcast_id}", response_model=BroadcastStatusOut, name="broadcast_status",
    summary="配信の状況 / status",
)
async def status(broadcast_id: IdPath, actor: Actor, api: Api) -> BroadcastStatusOut:
    """Counts by state and by error category, read live from the deliveries."""
    return await status_of(api, actor, broadcast_id)


@router.post("/{broadcast_id}/cancel", response_model=CancelOut, summary="取り消し / cancel")
async def cancel(broadcast_id: IdPath, actor: Actor, api: Api) -> CancelOut:
    """Stops everything not yet sent; a scheduled broadcast never starts."""

    async def stop() -> Cancellation:
        await follow.visible_broadcast(api.staff.pool, actor, broadcast_id, api.staff.now())
        return await api.queue.cancel(broadcast_id, api.staff.now())

    c = await audited(api, actor, "broadcast.cancel", f"broadcast {broadcast_id}", stop())
    return CancelOut(
        broadcast_id=c.broadcast_id, cancelled=c.cancelled, in_flight=c.in_flight,
        delivered=c.delivered, failed=c.failed,
    )


async def _recipient_filter(
    api: StaffApi,
    actor: Principal,
    state: StateName | None,
    category: str | None,
    failed: bool,
    temporary: bool = False,
    grade_id: int | None = None,
    class_id: int | None = None,
    unread: bool = False,
    unanswered: bool = False,
) -> follow.RecipientFilter:
    addresses: tuple[str, ...] | None = None
    if grade_id is not None or class_id is not None:
        grades = (grade_id,) if grade_id is not None else ()
        classes = (class_id,) if class_id is not None else ()
        # Filtering by a grade or class is counting its people: the same rights as sending.
        await check_audience(api.staff.pool, actor, Audience(grades=grades, classes=classes))
        addresses = tuple(await addresses_in(api.people, grades, classes))
    return follow.RecipientFilter(
        State(state) if state else None, category, failed, temporary, addresses, unread,
        unanswered,
    )


@router.post(
    "/{broadcast_id}/resend", response_model=BroadcastCreatedOut, status_code=201,
    summary="絞り込んだ宛先への再送 / resend to a filtered set",
)
async def resend(
    broadcast_id: IdPath, body: ResendIn, actor: Actor, api: Api, request: Request
) -> BroadcastCreatedOut:
    """A new broadcast linked to this one (``resend_of``), to those of its recipients the
    filters select, e.g. ``{"failed": true, "temporary": true}``; contacts that left since
    are skipped."""
    which = await _recipient_filter(
        api, actor, body.state, body.category, body.failed, body.temporary, body.grade_id,
        body.class_id,
    )
    made = await audited(
        api, actor, "broadcast.resend", f"broadcast {broadcast_id}",
        sending.resend(
            api.staff, api.people, api.queue, actor, broadcast_id, which, api.max_age,
            body.subject, body.body,
        ),
        object_of=lambda c: f"broadcast {c.broadcast_id} (resend of {broadcast_id})",
    )
    url = public_url_for(request, api, "broadcast_status", broadcast_id=made.broadcast_id)
    return BroadcastCreatedOut(
        broadcast_id=made.broadcast_id, recipients=made.recipients, replayed=False,
        summary_ja=made.summary_ja, status_url=url,
    )


CategoryQuery = Annotated[
    Text | None, Query(max_length=40, description="error category key, e.g. unknown_user")
]


@router.get(
    "/{broadcast_id}/recipients", response_model=RecipientPage,
    summary="宛先ごとの状況 / recipients",
)
async def recipients(
    broadcast_id: IdPath,
    actor: Actor,
    api: Api,
    state: StateName | None = None,
    category: CategoryQuery = None,
    failed: bool = False,
    grade_id: IdQuery = None,
    class_id: IdQuery = None,
    unread: bool = False,
    unanswered: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RecipientPage:
    """One row per recipient with the accounts it receives for; ``failed=true`` only those
    failed or waiting for a retry; ``grade_id`` / ``class_id`` only that grade's or class's;
    ``unread=true`` only those delivered and not read (read confirmation), ``unanswered=true``
    only those delivered whose children have not answered the questions."""

    async def page() -> tuple[int, list[follow.Recipient]]:
        which = await _recipient_filter(
            api, actor, state, category, failed, grade_id=grade_id, class_id=class_id,
            unread=unread, unanswered=unanswered,
        )
        return await follow.recipients(
            api.staff.pool, api.people.sealer, actor, broadcast_id, which, api.staff.now(),
            limit, offset,
        )

    total, rows = await audited(
        api, actor, "broadcast.recipients", f"broadcast {broadcast_id}", page()
    )
    accounts = await accounts_of(api.people, [r.address for r in rows])
    return RecipientPage(
        total=total,
        items=[
            RecipientOut(
                delivery_id=r.delivery_id, address=r.address, state=r.state.value,
                state_label_ja=STATE_LABELS_JA[r.state], attempts=r.attempts,
                last_code=r.last_code, last_status=r.last_status, last_text=r.last_text,
                reason=r.reason, category=r.category, category_label_ja=r.category_label_ja,
                updated_at=r.updated_at, finished_at=r.finished_at,
                accounts=[AccountRefOut(**a.__dict__) for a in accounts[r.address]],
                may_have_arrived=r.may_have_arrived, tls=r.tls,
            )
            for r in rows
        ],
    )


@router.get(
    "/{broadcast_id}/recipients.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM"}},
    summary="宛先ごとの状況の CSV / recipients as CSV",
)
async def recipients_csv(
    broadcast_id: IdPath,
    actor: Actor,
    api: Api,
    state: StateName | None = None,
    category: CategoryQuery = None,
    failed: bool = False,
    grade_id: IdQuery = None,
    class_id: IdQuery = None,
    unread: bool = False,
    unanswered: bool = False,
) -> Response:
    async def which() -> follow.RecipientFilter:
        return await _recipient_filter(
            api, actor, state, category, failed, grade_id=grade_id, class_id=class_id,
            unread=unread, unanswered=unanswered,
        )

    return csv_response(await recipients_csv_bytes(api, actor, broadcast_id, which()),
                        broadcast_id)


def csv_response(data: bytes, broadcast_id: int) -> Response:
    return Response(
        data, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="broadcast-{broadcast_id}.csv"'},
    )


async def recipients_csv_bytes(
    api: StaffApi, actor: Principal, broadcast_id: int,
    which: Awaitable[follow.RecipientFilter],
) -> bytes:
    """Every recipient ``which`` selects as CSV (UTF-8 with BOM, Japan time), audited: the
    API's and the staff screens' download."""

    async def every() -> list[follow.Recipient]:
        return await follow.all_recipients(
            api.staff.pool, api.people.sealer, actor, broadcast_id, await which,
            api.staff.now(),
        )

    rows = await audited(
        api, actor, "broadcast.recipients_csv", f"broadcast {broadcast_id}", every()
    )
    accounts = await accounts_of(api.people, [r.address for r in rows])
    names = {
        address: "、".join(_account_label(a) for a in refs) for address, refs in accounts.items()
    }
    return follow.recipients_csv(rows, names).encode("utf-8")
