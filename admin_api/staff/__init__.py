"""The staff API: sign-in, staff and API keys, the audit log, broadcasts and their follow-up.

FastAPI routers with no app of their own. The app that serves them (``admin_api.app``) mounts
them with the engine's pool and settings:

    from admin_api.staff import StaffApi, staff_routers

    mount_staff(app, await StaffApi.open(engine.pool, settings, engine.platform.clock))

which is ``app.state.staff_api = api`` plus ``app.include_router`` for each of
``staff_routers()``. ``StaffApi.open`` is async (it checks the people key and loads the audit
key): call it in the app's lifespan, before requests are served. An app built before the
engine is open includes ``staff_routers()`` when it is built and sets ``app.state.staff_api``
in its lifespan. The
routers turn errors into ``{"error", "message"}`` bodies themselves (``errors.StaffRoute``), so
no exception handlers are needed on the app.

    auth_routes       /api/staff/login, logout, session, totp
    admin_routes      /api/staff/accounts, policy, api-keys, senders, organisation
    audit_routes      /api/staff/audit, audit.csv, audit/verify
    broadcast_routes  /api/staff/broadcasts ... recipients, recipients.csv, cancel
    attachment_routes /api/staff/broadcasts/with-files, {id}/files, {id}/files/{n};
                      /api/apps/broadcasts/with-files
    saved_routes      /api/staff/templates, drafts, drafts/{id}/send
    app_routes        /api/apps/broadcasts (API key + Idempotency-Key)
    roster_routes     /api/staff/registration-rate (登録率)
    twoway_routes     /api/staff/broadcasts/{id}/reads, survey, remind, replies;
                      /api/staff/reports, reports.csv, reports/new, seen, settings
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from admin_api.staff import (
    admin_routes,
    app_routes,
    attachment_routes,
    audit_routes,
    auth_routes,
    broadcast_routes,
    roster_routes,
    saved_routes,
    twoway_routes,
)
from admin_api.staff.deps import StaffApi


def staff_routers() -> list[APIRouter]:
    """Every router of the staff API, to ``include_router`` into the app."""
    return [
        auth_routes.router,
        admin_routes.router,
        audit_routes.router,
        broadcast_routes.router,
        attachment_routes.router,
        attachment_routes.app_router,
        saved_routes.router,
        app_routes.router,
        twoway_routes.router,
        roster_routes.router,
    ]


def mount_staff(app: FastAPI, api: StaffApi) -> None:
    """Keep ``api`` where the routes find it and include every router: the whole mount."""
    app.state.staff_api = api
    for router in staff_routers():
        app.include_router(router)


__all__ = ["StaffApi", "mount_staff", "staff_routers"]
