"""The audit log through the API: the board sees everything, a school administrator the
entries of their own school; both can download CSV (UTF-8 with BOM). The board can verify the
chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from admin_api.staff.deps import Api, FullSession
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import AuditEntryOut, AuditPage, IdQuery, Text, VerifyOut
from engine.staff import audit
from engine.staff.audit_checkpoints import verify_all
from engine.staff.models import Role
from engine.staff.rights import require_board

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
    """The filter, narrowed to the caller's school unless the caller is the board."""
    if s.member.role is Role.TEACHER:
        require_board(s.principal)
    org = organisation_id if s.member.role is Role.BOARD else s.member.organisation_id
    return audit.AuditFilter(org, action, actor, since, until, result)


Filter = Annotated[audit.AuditFilter, Depends(audit_filter)]


@router.get("", response_model=AuditPage, summary="監査ログ / audit log")
async def entries(
    f: Filter,
    s: FullSession,
    api: Api,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    total, rows = await audit.entries(api.staff.pool, f, limit, offset)
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
    text = await audit.export(api.staff.pool, f)
    await api.staff.log(s.principal, "audit.export", "")
    return Response(
        text.encode("utf-8"), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/verify", response_model=VerifyOut, summary="改ざんの確認 / verify the chain")
async def verify(s: FullSession, api: Api) -> VerifyOut:
    require_board(s.principal)
    v = await verify_all(api.staff.pool, api.staff.audit_key, api.staff.checkpoints)
    return VerifyOut(ok=v.ok, checked=v.checked, first_bad=v.first_bad, message=v.summary_ja())


