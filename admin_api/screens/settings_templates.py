"""Templates on the settings screen: ``/staff/settings/templates/new`` and ``/{id}`` show the
form, a POST to ``/staff/settings/templates`` makes one, to ``/{id}`` changes it, to
``/{id}/delete`` asks 「本当に削除しますか」 and, posted again with ``confirm=1``, deletes it.
The same engine calls (engine/staff/saved.py: the school's administrators change their
school's, the board the board's and its schools') and audit entries as the staff API's template
routes (the engine refuses a teacher's change, audited as denied like any other). A form with
bad input is shown again as typed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from admin_api.screens.compose_form import PRIORITIES
from admin_api.screens.settings import require_settings
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.people import Category
from engine.platform.clock import jst_text
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff import saved
from engine.staff.models import NotFoundError, RightsError
from engine.staff.saved import Content, Kind

router = APIRouter(prefix="/staff/settings/templates", route_class=ScreenRoute,
                   include_in_schema=False)

TemplateId = Annotated[int, Path(ge=1, le=2**62)]
TITLE = "テンプレート"


def _content(form: FormData) -> Content:
    try:
        category = Category(field(form, "category", 40))
    except ValueError:
        raise InputError("区分を選んでください (choose a category)") from None
    priority = field(form, "priority", 20)
    if priority not in PRIORITIES:
        raise InputError("優先度を選んでください (choose a priority)")
    return Content(
        field(form, "name", 200), field(form, "sender", 320).strip(),
        field(form, "subject", 300), field(form, "body", 20_000), category,
        Priority[priority.upper()],
    )


def _form(v: Visit, c: Content, template_id: int | None, status: int = 200,
          error: str = "") -> HTMLResponse:
    return v.page(
        "template_form.html", status, title=TITLE, c=c, template_id=template_id, error=error,
        categories=[(x.value, x.label_ja) for x in Category], priorities=PRIORITIES,
        priority="emergency" if c.priority is Priority.EMERGENCY else "normal",
    )


@router.get("/new", response_class=HTMLResponse)
async def new_form(request: Request) -> Response:
    v = await visit(request)
    await require_settings(v)
    return _form(v, Content(""), None)


@router.get("/{template_id}", response_class=HTMLResponse)
async def edit_form(request: Request, template_id: TemplateId) -> Response:
    v = await visit(request)
    await require_settings(v)
    t = await saved.get(v.api.staff, v.actor, Kind.TEMPLATE, template_id)
    return _form(v, t.content, template_id)


@router.post("", response_class=HTMLResponse)
async def create(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    try:
        c = _content(form)
        await v.api.staff.audited(
            v.actor, "template.create", c.name[:100],
            saved.create(v.api.staff, v.actor, Kind.TEMPLATE, c),
            object_of=lambda x: f"template {x.id}",
        )
    except InputError as exc:
        return _form(v, _typed(form), None, 422, str(exc))
    return see_other("/staff/settings?done=template_new#templates")


@router.post("/{template_id}", response_class=HTMLResponse)
async def update(request: Request, template_id: TemplateId) -> Response:
    v = await visit(request)
    form = await v.form()
    try:
        c = _content(form)
        await v.api.staff.audited(
            v.actor, "template.update", f"template {template_id}",
            saved.update(v.api.staff, v.actor, Kind.TEMPLATE, template_id, c),
        )
    except NotFoundError:
        raise
    except InputError as exc:
        return _form(v, _typed(form), template_id, 422, str(exc))
    return see_other("/staff/settings?done=template_saved#templates")


@router.post("/{template_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, template_id: TemplateId) -> Response:
    """The first POST asks 「本当に削除しますか」 (within the same rights as the deletion);
    the second, with ``confirm=1``, deletes."""
    v = await visit(request)
    form = await v.form()
    if field(form, "confirm", 5) != "1":
        t = await saved.get(v.api.staff, v.actor, Kind.TEMPLATE, template_id)
        if not saved.changeable(v.actor, t):
            raise RightsError("削除する権限がありません (not yours to delete)")
        return v.page(
            "confirm_delete.html", title="テンプレートの削除", what="テンプレート",
            items=[("名前", t.content.name), ("件名", t.content.subject),
                   ("更新", jst_text(t.updated_at, seconds=False))],
            notes=[], hidden=[], action=f"/staff/settings/templates/{template_id}/delete",
            back="/staff/settings#templates",
        )
    await v.api.staff.audited(
        v.actor, "template.delete", f"template {template_id}",
        saved.delete(v.api.staff, v.actor, Kind.TEMPLATE, template_id),
    )
    return see_other("/staff/settings?done=template_deleted#templates")


def _typed(form: FormData) -> Content:
    """The form as typed, for showing it again (unknown choices fall back to the defaults)."""
    try:
        category = Category(field(form, "category", 40))
    except ValueError:
        category = Category.NOTICE
    return Content(
        field(form, "name", 200), field(form, "sender", 320), field(form, "subject", 300),
        field(form, "body", 20_000), category,
        Priority.EMERGENCY if field(form, "priority", 20) == "emergency" else Priority.NORMAL,
    )
