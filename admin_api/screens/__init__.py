"""The staff screens: server-rendered Japanese pages under ``/staff`` over the staff API's
engine calls, sessions and rights (no second rights model, no SQL here).

    web         cookie session, CSRF, rendering, errors as Japanese pages (``ScreenRoute``)
    account     /staff, /staff/login, logout, password, totp
    broadcasts  /staff/home (dashboard), /staff/broadcasts/{id} (+ progress.json,
                recipients.csv, cancel)
    compose     /staff/compose, compose/count(.json), compose/confirm, compose/send
                (compose_form: the form's fields; compose_files: the files sent as links)
    compose_saved  /staff/compose/from (?draft, ?template, ?copy), compose/draft,
                drafts/{id}/delete
    broadcast_actions  the broadcast page's filters, /staff/broadcasts/{id}/resend, remind
    surveys     /staff/broadcasts/{id}/survey (+ answers.csv, remind)
    reports     /staff/reports (+ reports.csv, reports/seen): absence and health reports
    people      /staff/roster (名簿), roster/rate, roster/accounts (+ one account's changes)
    classes     /staff/roster/classes (+ add, rename, remove): grades and classes;
                /staff/roster/class: a teacher's own classes' accounts (read-only)
    roster_import  /staff/roster/import (+ confirm): CSV with a dry-run preview
    schools     /staff/roster/schools (board), roster/notices(.pdf), roster/invitations
    static      /staff/static/screens.css, progress.js, compose.js (our only CSS and scripts)
    audit       /staff/audit (+ audit.csv, audit/verify): the audit log (administrators)
    settings    /staff/settings (+ hours, senders/add, senders/remove): report hours, templates
                (settings_templates: templates/new, templates/{id} (+ delete)), allowed senders
                (settings_health: health (+ question, move, off, on): the health questions)
    suppressions /staff/suppressions (+ remove): the suppression list (administrators)
    staffing    /staff/accounts (+ add, role, password, disable), /staff/keys (+ create,
                disable): staff accounts and API keys (administrators; keys: the board)
    apidocs     /docs: the API's reference from its OpenAPI document (no CDN)

Every page works without JavaScript; ``progress.js`` only refreshes the counts in place
(without it, a meta refresh reloads pages whose broadcasts are still moving), ``compose.js``
only shows the recipient count as the audience changes (without it, 「人数を確認」).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response

from admin_api.screens import (
    account,
    apidocs,
    audit,
    broadcast_actions,
    broadcasts,
    classes,
    compose,
    compose_saved,
    people,
    reports,
    roster_import,
    schools,
    settings,
    settings_health,
    settings_templates,
    staffing,
    suppressions,
    surveys,
)

_STATIC = Path(__file__).with_name("static")
_TYPES = {"screens.css": "text/css; charset=utf-8",
          "progress.js": "text/javascript; charset=utf-8",
          "compose.js": "text/javascript; charset=utf-8"}
_FILES = {name: (_STATIC / name).read_bytes() for name in _TYPES}

static_router = APIRouter(prefix="/staff/static", include_in_schema=False)


@static_router.get("/{name}")
async def static_file(name: str) -> Response:
    if name not in _FILES:
        return Response("見つかりません", status_code=404, media_type="text/plain; charset=utf-8")
    return Response(_FILES[name], media_type=_TYPES[name],
                    headers={"Cache-Control": "no-cache"})


def screen_routers() -> list[APIRouter]:
    return [static_router, account.router, broadcasts.router, broadcast_actions.router,
            compose.router, compose_saved.router, reports.router, surveys.router,
            people.router, roster_import.router, schools.router, classes.router,
            audit.router, suppressions.router, staffing.router, settings.router,
            settings_templates.router, settings_health.router, apidocs.router]


__all__ = ["screen_routers"]
