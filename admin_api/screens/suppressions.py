"""The suppression list screen (board and school administrators): ``/staff/suppressions``
pages the entries that concern the actor's people, newest first, finds one address by its hash
(``?address=``), and ``POST /staff/suppressions/remove`` takes one off with a reason, in the
audit log under ``suppression.remove`` with the address masked (engine/staff/suppression_view.py
decides what each administrator sees)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import ScreenRoute, field, see_other, visit
from engine.bounce.classify.categories import CATEGORIES
from engine.bounce.suppression import Suppression
from engine.platform.address import mask_addresses
from engine.platform.errors import InputError
from engine.staff import suppression_view
from engine.staff.suppression_view import SOURCE_LABELS_JA

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50


def _row(s: Suppression) -> dict[str, Any]:
    category = CATEGORIES[s.category].label_ja if s.category in CATEGORIES else s.category
    return {"s": s, "category": category, "source": SOURCE_LABELS_JA.get(s.source, s.source)}


@router.get("/suppressions", response_class=HTMLResponse)
async def suppressions_page(
    request: Request, address: Annotated[str, Query(max_length=320)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1, removed: bool = False,
) -> Response:
    v = await visit(request)
    staff, actor = v.api.staff, v.actor
    total, rows = await suppression_view.entries(
        staff, actor, PAGE_SIZE, (page - 1) * PAGE_SIZE
    )
    found: Suppression | None = None
    error = ""
    if address.strip():
        try:
            masked = mask_addresses(address.strip())
            found = await staff.audited(
                actor, "suppression.find", masked, suppression_view.find(staff, actor, address),
                object_of=lambda hit: f"{masked} found={hit is not None}",
            )
        except InputError as exc:
            error = str(exc)
    return v.page(
        "suppressions.html", title="配信停止リスト", rows=[_row(r) for r in rows], total=total,
        page=page, pages=max(1, -(-total // PAGE_SIZE)), address=address.strip(),
        found=_row(found) if found else None, searched=bool(address.strip()) and not error,
        error=error, removed=removed,
    )


@router.post("/suppressions/remove", response_class=HTMLResponse)
async def remove(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    address, reason = field(form, "address", 320).strip(), field(form, "reason", 500).strip()
    await v.api.staff.audited(
        v.actor, "suppression.remove", mask_addresses(address),
        suppression_view.remove(v.api.staff, v.actor, address, reason), detail=reason[:200],
    )
    return see_other("/staff/suppressions?removed=1")
