"""The dashboard and the broadcast page: progress, recipients (filtered: broadcast_actions.py),
CSV, cancel.

Reads go through ``engine.staff.follow`` with the signed-in actor, as the staff API's
``broadcast_routes`` do (a broadcast outside the rights is "not found"), with the same audit
entries; the CSV is the API's own (``broadcast_routes.recipients_csv_bytes``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from admin_api.screens.board_status import board_status
from admin_api.screens.broadcast_actions import FiltersQuery
from admin_api.screens.reports import new_reports
from admin_api.screens.web import ScreenRoute, see_other, visit
from admin_api.staff.broadcast_routes import csv_response, recipients_csv_bytes
from engine.people import Category
from engine.people.recipients import accounts_of
from engine.queue import BroadcastState, Cancellation, State
from engine.queue.broadcasts import BROADCAST_STATE_LABELS_JA
from engine.queue.models import STATE_LABELS_JA
from engine.staff import audiences, follow
from engine.twoway import survey_of
from engine.twoway.reads import asks_read
from engine.twoway.staff_views import waiting

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50
BroadcastId = Annotated[int, Path(ge=1, le=2**62)]
# Still moving: the screens refresh their counts (script, or a meta refresh without one).
LIVE = {BroadcastState.SCHEDULED, BroadcastState.SENDING}


def progress(b: follow.BroadcastRow) -> dict[str, Any]:
    """Delivered / failed / waiting counts and the share finished, in percent."""
    delivered = b.by_state.get(State.DELIVERED, 0)
    failed = b.by_state.get(State.FAILED, 0)
    total = sum(b.by_state.values())
    waiting = total - delivered - failed
    percent = 100 if total == 0 else (100 * (delivered + failed)) // total
    return {
        "id": b.id, "delivered": delivered, "failed": failed, "waiting": waiting,
        "total": total, "percent": percent, "state": b.state.value,
        "state_label": BROADCAST_STATE_LABELS_JA[b.state], "live": b.state in LIVE,
    }


def category_label(key: str) -> str:
    try:
        return Category(key).label_ja
    except ValueError:
        return key


def _row(b: follow.BroadcastRow) -> dict[str, Any]:
    return {"b": b, "p": progress(b), "category": category_label(b.category), "waiting": None}


@router.get("/home", response_class=HTMLResponse)
async def dashboard(request: Request, auto: bool = False) -> Response:
    """Today's broadcasts and those still scheduled or sending, then the recent others.
    ``auto``: the page's own refresh without JavaScript, which is not activity."""
    v = await visit(request, touch=not auto)
    now = v.api.staff.now()
    shown, others = await follow.dashboard_broadcasts(v.api.staff.pool, v.actor, now)
    current = [_row(b) for b in shown]
    recent = [_row(b) for b in others]
    # Unread / unanswered of those that ask, linking to the broadcast page's filters.
    rows = current + recent
    waits = await waiting(v.api.staff.pool, {r["b"].id: r["p"]["delivered"] for r in rows})
    for r in rows:
        r["waiting"] = waits.get(r["b"].id)
    return v.page(
        "dashboard.html", title="ダッシュボード", current=current, recent=recent,
        live=any(r["p"]["live"] for r in current), new_reports=await new_reports(v),
        **await board_status(v),
    )


@router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
async def broadcast_page(
    request: Request, broadcast_id: BroadcastId, f: FiltersQuery,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1, auto: bool = False,
) -> Response:
    v = await visit(request, touch=not auto)
    api, actor = v.api, v.actor
    st = await follow.status(api.staff.pool, actor, broadcast_id, api.staff.now())
    which = await f.recipient_filter(v)
    total, rows = await api.staff.audited(
        actor, "broadcast.recipients", f"broadcast {broadcast_id}",
        follow.recipients_of(
            api.staff.pool, api.people.sealer, st, which, PAGE_SIZE, (page - 1) * PAGE_SIZE
        ),
    )
    accounts = await accounts_of(api.people, [r.address for r in rows])
    recipients = [
        {"r": r, "state": STATE_LABELS_JA[r.state],
         "accounts": "、".join(a.name for a in accounts.get(r.address, []))}
        for r in rows
    ]
    errors: dict[str, int] = {}
    categories: dict[str, str] = {}
    for c in st.by_category:
        errors[c.label_ja or c.category] = errors.get(c.label_ja or c.category, 0) + c.count
        categories[c.category] = c.label_ja or c.category
    classes = {c.id: c.label for c in
               (await audiences.choices(api.staff.pool, actor, api.staff.now())).classes}
    pages = max(1, -(-total // PAGE_SIZE))
    return v.page(
        "broadcast.html", title=f"配信 {broadcast_id}: {st.broadcast.subject}",
        row=_row(st.broadcast), body=st.body, errors=errors, skipped=st.skipped,
        recipients=recipients, total=total, f=f, page=page, pages=pages,
        cancellable=st.broadcast.state in LIVE, cancelled=None,
        has_survey=await survey_of(api.people, broadcast_id) is not None,
        asks_read=await asks_read(api.people, broadcast_id),
        categories=categories, classes=classes,
        filtered=f.labels(classes, categories),
    )


@router.get("/broadcasts/{broadcast_id}/progress.json")
async def progress_json(request: Request, broadcast_id: BroadcastId) -> Response:
    """The counts the pages' script polls (no personal data); polling does not keep the
    session alive."""
    v = await visit(request, touch=False)
    b = await follow.visible_broadcast(v.api.staff.pool, v.actor, broadcast_id,
                                       v.api.staff.now())
    return JSONResponse(progress(b), headers={"Cache-Control": "no-store"})


@router.get("/broadcasts/{broadcast_id}/recipients.csv")
async def recipients_csv(request: Request, broadcast_id: BroadcastId,
                         f: FiltersQuery) -> Response:
    v = await visit(request)

    async def which() -> follow.RecipientFilter:
        return await f.recipient_filter(v)

    data = await recipients_csv_bytes(v.api, v.actor, broadcast_id, which())
    return csv_response(data, broadcast_id)


@router.post("/broadcasts/{broadcast_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, broadcast_id: BroadcastId) -> Response:
    v = await visit(request)
    await v.form()
    api, actor = v.api, v.actor

    async def stop() -> Cancellation:
        await follow.visible_broadcast(api.staff.pool, actor, broadcast_id, api.staff.now())
        return await api.queue.cancel(broadcast_id, api.staff.now())

    await api.staff.audited(actor, "broadcast.cancel", f"broadcast {broadcast_id}", stop())
    return see_other(f"/staff/broadcasts/{broadcast_id}")

