"""The board's dashboard over HTTP: the carriers' state now (blocked, suspended, fine, from
the live runners' snapshots; a stale snapshot does not count) and the alert when /readyz would
say "not ready", with its Japanese reason. A school's administrator sees neither."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from engine.delivery._upkeep import STALE_SECONDS
from engine.queue import liveness
from screens.conftest import ScreensWorld
from screens.helpers import client, signed_in

_ROW = (
    "INSERT INTO shaping_state (runner, source, site, profile, rate, ceiling, "
    "connections_in_use, connections_allowed, suspended_until, suspensions, cuts, sent, "
    "delivered, deferred, throttled, refused, failed, blocked_until, block_reason, "
    "blocked_since, updated_at) VALUES ('h:1', $1, $2, $2, 1, 1, 0, 1, $3, 0, 0, 0, 0, 0, 0, "
    "0, 0, $4, $5, $6, $7)"
)


async def _site(sw: ScreensWorld, site: str, updated: datetime, suspended: datetime | None = None,
                blocked: datetime | None = None, reason: str = "",
                source: str = "192.0.2.1") -> None:
    await sw.w.api.staff.pool.execute(
        _ROW, source, site, suspended, blocked, reason,
        updated - timedelta(minutes=5) if blocked else None, updated)


def _carriers(html: str) -> dict[str, str]:
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(?:<strong>)?([^<]+)", html)
    return dict(rows)


async def test_the_board_sees_each_carrier_and_the_readiness_alert(sw: ScreensWorld) -> None:
    w = sw.w
    now = w.api.staff.now()
    async with client(w) as c:
        await signed_in(c, "board")
        # No runner yet: /readyz says not ready, and so does the dashboard, in Japanese.
        html = (await c.get("/staff/home")).text
        assert 'id="alerts"' in html and "配信プロセスが動いていません" in html
        assert 'id="carriers-none"' in html and "問題なし" in html
        await _site(sw, "docomo", now, blocked=now + timedelta(minutes=20),
                    reason="550 5.7.1 too many connections")
        await _site(sw, "docomo", now, source="192.0.2.2")          # another source: fine
        await _site(sw, "au", now, suspended=now + timedelta(minutes=3))
        await _site(sw, "gmail", now)
        await _site(sw, "softbank", now, suspended=now - timedelta(minutes=1))   # over
        await _site(sw, "rakuten", now - timedelta(seconds=10 * STALE_SECONDS),
                    blocked=now + timedelta(hours=1))               # a runner long gone
        # A runner announces itself (as its upkeep loop does every few seconds).
        await liveness.heartbeat(w.api.staff.pool, "h:1", w.api.staff.now())
        html = (await c.get("/staff/home")).text
        assert _carriers(html) == {"docomo": "ブロック中", "au": "一時停止中",
                                   "gmail": "問題なし", "softbank": "問題なし"}
        assert html.index(">docomo<") < html.index(">au<") < html.index(">gmail<")
        assert "550 5.7.1 too many connections" in html
        # A runner is alive: nothing is unready any more (the block is younger than block_alarm).
        assert 'id="alerts"' not in html
    async with client(w) as c:
        await signed_in(c, "admin1")
        html = (await c.get("/staff/home")).text
        assert "carriers-title" not in html and 'id="alerts"' not in html
        assert "docomo" not in html
