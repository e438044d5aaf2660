"""The audit log screen (board and school administrators): ``/staff/audit`` lists the entries
the actor may read (``engine.staff.managing``: the board its board's, a school's administrator
their school's), newest first, filtered by actor (login), action, result and a date range in
Japan time, 50 a page (LIMIT/OFFSET on the log's ``seq`` index); ``audit.csv`` the same as CSV.

The chain's state (board): walking the whole chain on every view would grow with the log, so
the page shows the latest verification (the newest ``audit.verify`` entry: when, by whom, what
it found) and the latest checkpoint kept outside the database, and a button that verifies now
(``POST /staff/audit/verify``, which records what it found in the log itself).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.reports import csv_file
from admin_api.screens.web import ScreenRoute, Visit, see_other, visit
from engine.platform.clock import JST
from engine.platform.errors import InputError
from engine.staff import audit, managing
from engine.staff.audit_checkpoints import Checkpoint, read_checkpoints
from engine.staff.models import RightsError, Role

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50
# The page counts the matching entries up to this many ("10,000 件以上" beyond): the pager
# reaches the newest 200 pages, the filters and the CSV the rest.
COUNT_UP_TO = 10_000
VERIFY = "audit.verify"
Text = Annotated[str, Query(max_length=100)]
Page = Annotated[int, Query(ge=1, le=100_000)]


def _start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(0), JST) if day else None


def _filter(v: Visit, actor: str, action: str, result: str, since: date | None,
            until: date | None) -> audit.AuditFilter:
    if since and until and until < since:
        raise InputError("期間の終わりが始まりより前です (the range ends before it starts)")
    asked = audit.AuditFilter(
        None, action.strip() or None, actor.strip().lower() or None, _start(since),
        _start(until + timedelta(days=1)) if until else None,
        result if result in audit.RESULT_LABELS_JA else None,
    )
    return managing.audit_filter(v.actor, asked)


def _latest_checkpoint(v: Visit) -> tuple[Checkpoint | None, str]:
    """The newest checkpoint in the file outside the database, or why there is none."""
    path = v.api.staff.checkpoints
    if path is None:
        return None, "チェックポイントのファイルが設定されていません ([staff] audit_checkpoints)。"
    if not path.exists():
        return None, "チェックポイントはまだ書かれていません (mamoru serve が 1 日 1 回書きます)。"
    try:
        points = read_checkpoints(path, v.api.staff.audit_key)
    except InputError as exc:
        return None, str(exc)
    return (points[-1], "") if points else (None, "チェックポイントはまだ書かれていません。")


async def _chain_state(v: Visit) -> dict[str, Any] | None:
    """The board's view of the chain: the latest verification and checkpoint."""
    if v.actor.role is not Role.BOARD:
        return None
    last = await managing.audit_newest(v.api.staff, v.actor, audit.AuditFilter(action=VERIFY))
    point, why = _latest_checkpoint(v)
    return {"last": last, "checkpoint": point, "why": why}


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request, actor: Text = "", action: Text = "", result: Text = "",
    since: date | None = None, until: date | None = None, page: Page = 1,
) -> Response:
    v = await visit(request)
    f = _filter(v, actor, action, result, since, until)
    total, rows = await managing.audit_entries(
        v.api.staff, v.actor, f, PAGE_SIZE, (page - 1) * PAGE_SIZE, count_up_to=COUNT_UP_TO
    )
    more, shown = total > COUNT_UP_TO, min(total, COUNT_UP_TO)
    await v.api.staff.log(v.actor, "audit.view", "", detail=f"page={page} (screens)")
    query = urlencode({k: x for k, x in (
        ("actor", actor.strip()), ("action", action.strip()), ("result", f.result or ""),
        ("since", since.isoformat() if since else ""),
        ("until", until.isoformat() if until else ""),
    ) if x})
    return v.page(
        "audit.html", title="監査ログ", rows=rows, total=shown, more=more,
        pages=max(1, -(-shown // PAGE_SIZE), page if more else 1),
        page=page, query=query, results=audit.RESULT_LABELS_JA,
        chosen={"actor": actor.strip(), "action": action.strip(), "result": f.result or "",
                "since": since.isoformat() if since else "",
                "until": until.isoformat() if until else ""},
        chain=await _chain_state(v),
    )


@router.get("/audit.csv")
async def audit_csv(
    request: Request, actor: Text = "", action: Text = "", result: Text = "",
    since: date | None = None, until: date | None = None,
) -> Response:
    v = await visit(request)
    f = _filter(v, actor, action, result, since, until)
    text = await managing.audit_export(v.api.staff, v.actor, f)
    await v.api.staff.log(v.actor, "audit.export", "", detail="(screens)")
    return csv_file(text.encode("utf-8"), "audit.csv")


@router.post("/audit/verify")
async def verify_now(request: Request) -> Response:
    """The board walks the whole chain now; the result is kept as an ``audit.verify`` entry."""
    v = await visit(request)
    await v.form()
    try:
        found = await managing.audit_verify(v.api.staff, v.actor)
    except RightsError as exc:
        await v.api.staff.log(v.actor, VERIFY, "chain", audit.Result.DENIED, str(exc)[:300])
        raise
    await v.api.staff.log(
        v.actor, VERIFY, "chain", audit.Result.OK if found.ok else audit.Result.FAILED,
        found.summary_ja()[:300],
    )
    return see_other("/staff/audit")
