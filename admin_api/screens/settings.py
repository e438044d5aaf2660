"""The settings screen (administrators): ``/staff/settings`` for one school the actor
administers (the board picks among its schools):

    hours       the school's report hours, reasons and the teachers' mail, as the staff API's
                ``PUT /api/staff/reports/settings`` sets them (audited ``twoway.report_settings``)
    templates   the school's and the board's templates (settings_templates.py: new, edit,
                delete; audited ``template.*`` as the API's)
    senders     the allowed From addresses of the school (and of the board, for the board);
                the board's staff add and remove them (engine/staff/senders.py's ``add_for`` /
                ``remove_for``, audited ``sender.add`` / ``sender.remove`` as the CLI's), the
                domain needing a DKIM key unless ``dkim.allow_unsigned``

A teacher is refused the screen (403); a school's administrator changes their own school only;
another board's school is unknown. Nothing changes on a refusal or bad input.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from admin_api.screens.people import admin_scope
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.staff import saved
from engine.staff.models import Role
from engine.staff.rights import require_admin_of
from engine.staff.saved import Kind
from engine.staff.senders import add_for, list_senders, remove_for, senders_of, uses_of
from engine.twoway import report_settings, set_report_settings
from engine.twoway.notify import notify_teachers_of, set_notify_teachers

router = APIRouter(prefix="/staff/settings", route_class=ScreenRoute, include_in_schema=False)

Id = Annotated[int | None, Query(ge=1, le=2**62)]
# A new school's reasons until its administrators change them.
DEFAULT_REASONS = ("体調不良", "発熱", "通院", "家庭の事情", "その他")
DONE = {
    "hours": "連絡の受付設定を保存しました。",
    "template_new": "テンプレートを作りました。",
    "template_saved": "テンプレートを保存しました。",
    "template_deleted": "テンプレートを削除しました。",
    "sender_added": "差出人アドレスを登録しました。",
    "sender_removed": "差出人アドレスを削除しました (作成済みの配信はそのままです)。",
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


async def require_settings(v: Visit) -> None:
    """Administrators only (a teacher: the Japanese 403 of rights.py)."""
    organisation_id = v.actor.organisation_id
    if organisation_id is None:
        raise InputError("組織に属していません (no organisation)")
    await require_admin_of(v.api.staff.pool, v.actor, organisation_id)


def form_id(form: FormData, name: str) -> int:
    text = field(form, name, 20).strip()
    if not text.isdigit() or not 1 <= int(text) <= 2**62:
        raise InputError(f"{name} を選んでください (choose {name})")
    return int(text)


def _time(text: str, label: str) -> time:
    found = _HHMM.match(text.strip())
    if not found:
        raise InputError(f"{label}を 08:00 のように入れてください ({label}: HH:MM)")
    return time(int(found.group(1)), int(found.group(2)))


@router.get("", response_class=HTMLResponse)
async def settings_page(request: Request, school_id: Id = None, done: str = "") -> Response:
    v = await visit(request)
    await require_settings(v)
    scope = await admin_scope(v, school_id)
    pool, school = v.api.staff.pool, scope.school.id
    current = await report_settings(pool, school)
    templates = await saved.list_saved(v.api.staff, v.actor, Kind.TEMPLATE)
    own = await senders_of(pool, v.actor, school)
    sender_lists: list[dict[str, Any]] = [
        {"id": school, "name": scope.school.name, "senders": own}
    ]
    board = v.actor.role is Role.BOARD
    if board and v.actor.board_id is not None:
        sender_lists.insert(0, {"id": v.actor.board_id, "name": "教育委員会",
                                "senders": await senders_of(pool, v.actor, v.actor.board_id)})
    return v.page(
        "settings.html", title="設定", scope=scope, done=DONE.get(done, ""),
        opens=f"{current.opens:%H:%M}" if current else "08:00",
        closes=f"{current.closes:%H:%M}" if current else "17:00",
        reasons="\n".join(current.reasons if current else DEFAULT_REASONS),
        questions=len(current.health_questions) if current else 0,
        configured=current is not None, notify=await notify_teachers_of(pool, school),
        templates=[{"t": t, "mine": saved.changeable(v.actor, t)} for t in templates],
        sender_lists=sender_lists, board=board,
    )


@router.post("/hours", response_class=HTMLResponse)
async def save_hours(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    school = form_id(form, "school_id")
    staff = v.api.staff

    async def change() -> int:
        await require_admin_of(staff.pool, v.actor, school)
        opens, closes = _time(field(form, "opens", 10), "受付開始"), _time(
            field(form, "closes", 10), "受付終了")
        reasons = [r.strip() for r in field(form, "reasons", 2000).splitlines() if r.strip()]
        current = await report_settings(staff.pool, school)
        # The health questions are the API's to change: kept as they are.
        await set_report_settings(v.api.people, school, opens, closes, reasons,
                                  current.health_questions if current else ())
        await set_notify_teachers(staff.pool, school, field(form, "notify", 5) == "1",
                                  staff.now())
        return school

    await staff.audited(v.actor, "twoway.report_settings", f"school {school}", change(),
                        detail="(screens)")
    return see_other(f"/staff/settings?school_id={school}&done=hours")


@router.post("/senders/add", response_class=HTMLResponse)
async def add_sender(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    org, school = form_id(form, "organisation_id"), form_id(form, "school_id")
    address = field(form, "address", 320).strip()
    await v.api.staff.audited(
        v.actor, "sender.add", f"organisation {org}",
        add_for(v.api.staff.pool, v.actor, org, address, field(form, "name", 100),
                v.api.staff.dkim),
        object_of=lambda s: f"organisation {s.organisation_id}",
        detail=f"{address} name={field(form, 'name', 100)}"[:200],
    )
    return see_other(f"/staff/settings?school_id={school}&done=sender_added")


@router.post("/senders/remove", response_class=HTMLResponse)
async def remove_sender(request: Request) -> Response:
    """The first POST asks 「本当に削除しますか」, saying what names the address as its From
    (within the same rights as the removal); the second, with ``confirm=1``, removes it."""
    v = await visit(request)
    form = await v.form()
    org, school = form_id(form, "organisation_id"), form_id(form, "school_id")
    address = field(form, "address", 320).strip()
    if field(form, "confirm", 5) != "1":
        return await _confirm_removal(v, org, school, address)
    await v.api.staff.audited(
        v.actor, "sender.remove", f"organisation {org}",
        remove_for(v.api.staff.pool, v.actor, org, address), detail=address[:200],
    )
    return see_other(f"/staff/settings?school_id={school}&done=sender_removed")


async def _confirm_removal(v: Visit, org: int, school: int, address: str) -> Response:
    pool = v.api.staff.pool
    uses = await uses_of(pool, v.actor, org, address, v.api.staff.now())
    listed = [s for s in await list_senders(pool, org) if s.address == normalise_address(address)]
    if not listed:
        raise InputError(f"差出人に {address} はありません (not registered)")
    notes = [text for n, text in (
        (uses.scheduled, f"この差出人で予約中の配信が {uses.scheduled} 件あります。"
                         "予約中の配信はこの差出人のまま送られます。"),
        (uses.templates, f"この差出人を使うテンプレートが {uses.templates} 件あります。"
                         "それらから作る配信では差出人を選び直すことになります。"),
        (uses.drafts, f"この差出人を使う下書きが {uses.drafts} 件あります (同じく選び直しです)。"),
    ) if n]
    return v.page(
        "confirm_delete.html", title="差出人アドレスの削除", what="差出人アドレス",
        items=[("アドレス", listed[0].address), ("表示名", listed[0].display_name or "(なし)")],
        notes=notes or ["この差出人を使うテンプレート・下書き・予約中の配信はありません。"],
        hidden=[("organisation_id", org), ("school_id", school), ("address", address)],
        action="/staff/settings/senders/remove", back=f"/staff/settings?school_id={school}",
    )
