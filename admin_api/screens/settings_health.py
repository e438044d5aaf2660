"""Health questions on the settings screen: ``/staff/settings/health`` lists a school's
health-note questions (those asked, in order, and those no longer asked) with a preview of the
guardian's form; ``/question`` adds or edits one, ``/move`` reorders, ``/off`` and ``/on`` stop
and resume asking one.

The rights and the change are the staff API's ``PUT /api/staff/reports/settings``: the school's
administrators (the board for its schools), ``engine.twoway.set_report_settings`` with the
school's hours and reasons unchanged, audited ``twoway.report_settings``. A teacher is refused
(403), another school refused, another board's school unknown; bad input changes nothing and a
question form comes back as typed. The report hours must be saved first (they make the
school's settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from admin_api.pages.common import question_fields
from admin_api.screens.people import admin_scope
from admin_api.screens.settings import form_id, require_settings
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.platform.errors import InputError
from engine.staff.rights import require_admin_of
from engine.twoway import report_settings, set_report_settings
from engine.twoway.questions import MAX_QUESTIONS, Question, QuestionKind

router = APIRouter(prefix="/staff/settings/health", route_class=ScreenRoute,
                   include_in_schema=False)

Id = Annotated[int | None, Query(ge=1, le=2**62)]
Key = Annotated[str, Query(max_length=32)]
TITLE = "健康観察の質問"
KINDS = {
    QuestionKind.SINGLE.value: "ひとつ選ぶ",
    QuestionKind.MULTIPLE.value: "いくつでも選ぶ",
    QuestionKind.NUMBER.value: "数 (体温など)",
    QuestionKind.TEXT.value: "文章",
}
DONE = {
    "added": "質問を追加しました。",
    "saved": "質問を保存しました。",
    "moved": "順番を変えました。",
    "off": "質問を使わないようにしました (これまでの回答は連絡の一覧に残ります)。",
    "on": "質問をふたたび使うようにしました。",
}
NO_HOURS = ("先に「欠席・遅刻などの連絡の受付」を保存してください "
            "(save the report hours first)")
# Numbers as the API takes them (admin_api/staff/schemas.py ``QuestionIn``).
_LIMIT = Decimal(1_000_000)

Lists = tuple[list[Question], list[Question]]


class FormRefused(InputError):
    """Questions the engine refuses: the question form is shown again as typed (a refusal of
    the rights or the school is a page of its own)."""


@router.get("", response_class=HTMLResponse)
async def health_page(request: Request, school_id: Id = None, done: str = "") -> Response:
    v = await visit(request)
    await require_settings(v)
    scope = await admin_scope(v, school_id)
    current = await report_settings(v.api.staff.pool, scope.school.id)
    asked = list(current.health_questions) if current else []
    return v.page(
        "health.html", title=TITLE, scope=scope, done=DONE.get(done, ""),
        configured=current is not None, asked=asked,
        off=list(current.questions_off) if current else [], kinds=KINDS,
        preview=question_fields(asked, {}, {}), problems={}, disabled=True,
        full=len(asked) + len(current.questions_off if current else ()) >= MAX_QUESTIONS,
    )


@router.get("/question", response_class=HTMLResponse)
async def question_form(request: Request, school_id: Id = None, key: Key = "") -> Response:
    v = await visit(request)
    await require_settings(v)
    scope = await admin_scope(v, school_id)
    current = await report_settings(v.api.staff.pool, scope.school.id)
    if current is None:
        raise InputError(NO_HOURS)
    q = None
    if key:
        q = next((x for x in current.all_questions if x.key == key), None)
        if q is None:
            raise InputError(f"質問 {key[:32]} はありません (no such question)")
    return _form(v, scope.school.id, scope.school.name, q, key)


@router.post("/question", response_class=HTMLResponse)
async def save_question(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    school = form_id(form, "school_id")
    key = field(form, "key", 40).strip()
    try:
        try:
            typed = _typed(form, key or "new")
        except InputError as exc:
            raise FormRefused(str(exc)) from None

        def put(asked: list[Question], off: list[Question]) -> Lists:
            if not key:
                return [*asked, replace(typed, key=_new_key(asked + off))], off
            for which in (asked, off):
                for i, q in enumerate(which):
                    if q.key == key:
                        which[i] = replace(typed, max_length=q.max_length)
                        return asked, off
            raise InputError(f"質問 {key[:32]} はありません (no such question)")

        await _change(v, school, put, "new" if not key else f"edit {key}")
    except FormRefused as exc:
        return _form(v, school, "", _typed_as_is(form), key, 422, str(exc))
    return see_other(f"/staff/settings/health?school_id={school}&done="
                     + ("saved" if key else "added"))


@router.post("/move", response_class=HTMLResponse)
async def move(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    school, key = form_id(form, "school_id"), field(form, "key", 40)
    step = -1 if field(form, "to", 10) == "up" else 1

    def moved(asked: list[Question], off: list[Question]) -> Lists:
        i = _index(asked, key)
        j = min(max(i + step, 0), len(asked) - 1)
        asked[i], asked[j] = asked[j], asked[i]
        return asked, off

    await _change(v, school, moved, f"move {key}")
    return see_other(f"/staff/settings/health?school_id={school}&done=moved#q-{key}")


@router.post("/off", response_class=HTMLResponse)
async def stop_asking(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    school, key = form_id(form, "school_id"), field(form, "key", 40)

    def off_(asked: list[Question], off: list[Question]) -> Lists:
        q = asked.pop(_index(asked, key))
        return asked, [*off, q]

    await _change(v, school, off_, f"off {key}")
    return see_other(f"/staff/settings/health?school_id={school}&done=off")


@router.post("/on", response_class=HTMLResponse)
async def ask_again(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    school, key = form_id(form, "school_id"), field(form, "key", 40)

    def on(asked: list[Question], off: list[Question]) -> Lists:
        q = off.pop(_index(off, key))
        return [*asked, q], off

    await _change(v, school, on, f"on {key}")
    return see_other(f"/staff/settings/health?school_id={school}&done=on")


async def _change(v: Visit, school: int, change: Callable[[list[Question], list[Question]],
                  Lists], what: str) -> None:
    """One change of the school's questions, as the API's PUT makes it (rights, audit)."""
    api = v.api

    async def run() -> int:
        await require_admin_of(api.staff.pool, v.actor, school)
        current = await report_settings(api.staff.pool, school)
        if current is None:
            raise InputError(NO_HOURS)
        asked, off = change(list(current.health_questions), list(current.questions_off))
        try:
            await set_report_settings(api.people, school, current.opens, current.closes,
                                      current.reasons, asked, off)
        except InputError as exc:
            raise FormRefused(str(exc)) from None
        return school

    await api.staff.audited(v.actor, "twoway.report_settings", f"school {school}", run(),
                            detail=f"(screens) health {what}"[:200])


def _index(questions: list[Question], key: str) -> int:
    for i, q in enumerate(questions):
        if q.key == key:
            return i
    raise InputError(f"質問 {key[:32]} はありません (no such question)")


def _new_key(existing: list[Question]) -> str:
    """``q1``, ``q2`` ...: the first not taken (staff never type keys on the screen)."""
    taken = {q.key for q in existing}
    return next(f"q{n}" for n in range(1, MAX_QUESTIONS + 2) if f"q{n}" not in taken)


def _number(form: FormData, name: str, label: str) -> Decimal | None:
    text = field(form, name, 20).strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{label}は数で入れてください ({name}: a number)") from None
    if not value.is_finite() or abs(value) > _LIMIT:
        raise InputError(f"{label}は ±1000000 までです ({name}: out of range)")
    return value


def _options(form: FormData) -> tuple[str, ...]:
    return tuple(o.strip()[:100] for o in field(form, "options", 4000).splitlines()
                 if o.strip())


def _typed(form: FormData, key: str) -> Question:
    """The question the form describes (InputError when it cannot be one)."""
    kind = field(form, "kind", 20)
    if kind not in KINDS:
        raise InputError("回答の形を選んでください (choose a kind)")
    label = field(form, "label", 400).strip()
    if not label:
        raise InputError("質問の文を入れてください (the question has no text)")
    if len(label) > 200:
        raise InputError("質問の文は 200 文字までです (at most 200 characters)")
    choice = kind in (QuestionKind.SINGLE.value, QuestionKind.MULTIPLE.value)
    options = _options(form) if choice else ()
    if choice and len(options) < 2:
        raise InputError("選択肢を 1 行に 1 つ、2 つ以上入れてください (two options or more)")
    number = kind == QuestionKind.NUMBER.value
    return Question(
        key=key, label=label, kind=QuestionKind(kind),
        required=field(form, "required", 5) == "1", options=options,
        minimum=_number(form, "minimum", "最小値") if number else None,
        maximum=_number(form, "maximum", "最大値") if number else None,
        unit=field(form, "unit", 10).strip() if number else "",
    )


def _typed_as_is(form: FormData) -> dict[str, Any]:
    """The form's fields as typed, for showing it again after a refusal."""
    return {name: field(form, name, 4000) for name in
            ("label", "kind", "options", "required", "minimum", "maximum", "unit")}


def _form(v: Visit, school: int, school_name: str, q: Question | dict[str, Any] | None,
          key: str, status: int = 200, error: str = "") -> HTMLResponse:
    if isinstance(q, Question):
        typed: dict[str, Any] = {
            "label": q.label, "kind": q.kind.value, "options": "\n".join(q.options),
            "required": "1" if q.required else "",
            "minimum": "" if q.minimum is None else str(q.minimum),
            "maximum": "" if q.maximum is None else str(q.maximum), "unit": q.unit,
        }
    else:
        typed = q or {"label": "", "kind": "single", "options": "", "required": "",
                      "minimum": "", "maximum": "", "unit": ""}
    return v.page("health_question.html", status, title=TITLE, school_id=school,
                  school_name=school_name, key=key, q=typed, kinds=KINDS, error=error)
