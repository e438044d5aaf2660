"""The audit log through the API: the board sees its own board's entries, a school
administrator the entries of their own school; both can download CSV (UTF-8 with BOM). The
board can verify the chain (engine/staff/managing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from admin_api.staff.deps import Api, FullSession
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import AuditEntryOut, AuditPage, IdQuery, Text, VerifyOut
from engine.staff import audit, managing

router = APIRouter(
    prefix="/api/staff/audit", tags=["audit"], route_class=StaffRoute, responses=ERROR_RESPONSES
)


def audit_filter(
    s: FullSession,
    action: Annotated[Text | None, Query(max_length=100)] = None,
    actor: Annotated[
        Text | None, Query(max_length=100, description="actor name / login")
    ] = None,
    result: Annotated[str | None, Query(pattern="^(ok|denied|failed)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    organisation_id: IdQuery = None,
) -> audit.AuditFilter:
    """The filter as asked; the engine narrows it to what the caller may read."""
    return managing.audit_filter(
        s.principal, audit.AuditFilter(organisation_id, action, actor, since, until, result)
    )


Filter = Annotated[audit.AuditFilter, Depends(audit_filter)]


@router.get("", response_model=AuditPage, summary="監査ログ / audit log")
async def entries(
    f: Filter,
    s: FullSession,
    api: Api,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    total, rows = await managing.audit_entries(api.staff, s.principal, f, limit, offset)
    await api.staff.log(s.principal, "audit.view", "", detail=f"offset={offset}")
    return AuditPage(
        total=total, items=[AuditEntryOut(**e.__dict__) for e in rows]
    )


@router.get(
    ".csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM"}},
    summary="監査ログの CSV / audit log as CSV",
)
async def export(f: Filter, s: FullSession, api: Api) -> Response:
    text = await managing.audit_export(api.staff, s.principal, f)
    await api.staff.log(s.principal, "audit.export", "")
    return Response(
        text.encode("utf-8"), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/verify", response_model=VerifyOut, summary="改ざんの確認 / verify the chain")
async def verify(s: FullSession, api: Api) -> VerifyOut:
    v = await managing.audit_verify(api.staff, s.principal)
    return VerifyOut(ok=v.ok, checked=v.checked, first_bad=v.first_bad, message=v.summary_ja())


