"""``/healthz`` (the process answers) and ``/readyz`` (it can deliver: engine/delivery/health.py)
for load balancers, systemd and monitoring. JSON, never cached, no personal data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from admin_api.site import Site, site_of
from engine.delivery.health import readiness

router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


@router.get("/readyz")
async def readyz(site: Annotated[Site, Depends(site_of)]) -> JSONResponse:
    found = await readiness(
        site.people.pool, site.people.clock.now(),
        block_alarm=site.settings.metrics.block_alarm,
        backup_expected=bool(site.settings.backup.daily_at),
    )
    body = {
        "ready": found.ok,
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in found.checks.items()},
    }
    return JSONResponse(body, status_code=200 if found.ok else 503, headers=_NO_STORE)
