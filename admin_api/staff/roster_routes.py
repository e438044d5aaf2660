"""The roster for staff: the registration rate (登録率) per school, grade and class, within
the caller's rights (engine/staff/roster.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from admin_api.staff.deps import Actor, Api, audited
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import RegistrationRateOut, RegistrationRatePage
from engine.staff import roster

router = APIRouter(
    prefix="/api/staff/registration-rate", tags=["roster"], route_class=StaffRoute,
    responses=ERROR_RESPONSES,
)


@router.get("", response_model=RegistrationRatePage, summary="登録率 / registration rate")
async def registration_rate(
    actor: Actor,
    api: Api,
    school: Annotated[str | None, Query(max_length=100, description="code or name")] = None,
) -> RegistrationRatePage:
    """Per school, grade and class: the board sees its schools, a school its own, a teacher
    their classes. account_rate = accounts with a confirmed contact / accounts; contact_rate =
    confirmed contacts / accounts."""
    rows = await audited(
        api, actor, "roster.rate", school or "all",
        roster.rate_for(api.staff.pool, actor, school),
    )
    return RegistrationRatePage(items=[
        RegistrationRateOut(
            school=r.school, school_name=r.school_name, grade=r.grade, class_name=r.class_name,
            accounts=r.accounts, registered_accounts=r.registered, contacts=r.contacts,
            confirmed_contacts=r.confirmed, account_rate=round(r.account_rate, 4),
            contact_rate=round(r.contact_rate, 4),
        )
        for r in rows
    ])
