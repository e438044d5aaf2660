"""What the board's dashboard adds: the carriers' state now (each site 「ブロック中」,
「一時停止中」 or 「問題なし」, from the runners' snapshots: engine/delivery/shaping_state.py)
and an alert when ``/readyz`` would answer "not ready" (engine/delivery/health.py computes
both), with its Japanese reasons. Board administrators only: a school sees neither."""

from __future__ import annotations

from typing import Any

from admin_api.screens.web import Visit
from admin_api.site import Site
from engine.delivery.health import readiness
from engine.delivery.shaping_state import carriers_now
from engine.staff.models import Role


async def board_status(v: Visit) -> dict[str, Any]:
    """``carriers`` and ``alerts`` for the dashboard (empty for anyone but the board)."""
    if v.actor.role is not Role.BOARD:
        return {"carriers": None, "alerts": []}
    pool, now = v.api.staff.pool, v.api.staff.now()
    site = getattr(v.request.app.state, "site", None)
    block_alarm, backup_expected = 1800.0, False
    if isinstance(site, Site):
        block_alarm = float(site.settings.metrics.block_alarm)
        backup_expected = bool(site.settings.backup.daily_at)
    ready = await readiness(pool, now, block_alarm, backup_expected)
    alerts = [c.detail for c in ready.checks.values() if not c.ok]
    return {"carriers": await carriers_now(pool, now), "alerts": alerts}
