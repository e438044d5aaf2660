"""What ``mamoru serve`` runs beside its first runner: the inbound SMTP server (bounces,
registration by empty mail, service addresses), the HTTP pages with the staff API, the minute
task that sends read reminders and tells class teachers of new reports, the log lines of
broadcasts started and finished, the SMTP submission server for applications, the daily
prune of the audit log and of finished broadcasts past [queue] keep, and the daily backup.

Started here, in ``cli/``, and handed to the engine's workers as a function, so that the
engine never imports ``inbound/`` or ``admin_api/`` (DESIGN.md's import direction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from engine.delivery.context import Engine
from engine.delivery.workers import Service

if TYPE_CHECKING:
    from engine.people import People

log = logging.getLogger(__name__)


async def front_services(engine: Engine) -> list[Service]:
    """Start the inbound server (``[inbound] listen``) and the pages (``[http] listen``); if
    one cannot start, those already started are stopped and the error goes on."""
    started: list[Service] = []
    try:
        if engine.settings.inbound.listen:
            started.append(await start_inbound(engine))
        if engine.settings.http.listen:
            started.append(await start_http(engine))
        started.append(await start_reminders(engine))
        started.append(await start_broadcast_log(engine))
        if engine.settings.submission.listen:
            started.append(await start_submission(engine))
        started.append(await start_audit_keeper(engine))
        started.append(start_retention_keeper(engine))
        if engine.settings.backup.daily_at:
            started.append(await start_backup_keeper(engine))
    except BaseException:
        for service in reversed(started):
            await service.stop()
        raise
    return started


async def start_inbound(engine: Engine) -> Service:
    from inbound import InboundServer

    server = InboundServer(engine.settings, engine.pool, await engine.verp_secret(), engine.clock)
    await server.start()
    return server


async def start_http(engine: Engine) -> Service:
    """The guardians' pages and the staff API (under /api/) on ``[http] listen``; FastAPI is
    imported only when pages are served."""
    from admin_api.app import create_app
    from admin_api.server import HttpServer
    from admin_api.site import open_site
    from admin_api.staff import StaffApi, mount_staff
    from engine.people import People

    people = await People.open(engine.pool, engine.settings.people, engine.clock)
    site = await open_site(engine.settings, people, await engine.verp_secret())
    app = create_app(site)
    mount_staff(app, await StaffApi.open(engine.pool, engine.settings, engine.clock))
    server = HttpServer(app, engine.settings.http.listen)
    await server.start()
    return server


class Reminders:
    """Sends the read reminders that are due, mails class teachers of new reports (and forgets
    old page request counts), every ``interval`` seconds, until stopped. One serve runs it once
    (in its first worker); serves on several hosts are kept apart by the database: reminders
    by an advisory lock, teachers' notices by locking each school's settings row (``FOR UPDATE
    SKIP LOCKED``, ``notified_until`` moved in the enqueue's transaction), so nothing goes out
    twice."""

    def __init__(self, engine: Engine, interval: float = 60.0) -> None:
        self.engine = engine
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from engine.people import People

        people = await People.open(
            self.engine.pool, self.engine.settings.people, self.engine.clock
        )
        self._task = asyncio.create_task(self._loop(people))

    async def _loop(self, people: People) -> None:
        from engine.twoway.notify import send_report_notices
        from engine.twoway.page_limits import prune
        from engine.twoway.reminders import send_due_reminders

        settings = self.engine.settings
        while True:
            # Each step on its own: a failing one must not hold back the others, and a
            # database hiccup must not end the serve (the next turn tries again).
            try:
                await send_due_reminders(people, self.engine.queue, settings.queue.max_age)
            except Exception:
                log.exception("read reminders failed; trying again in %.0f s", self.interval)
            try:
                await send_report_notices(
                    people, self.engine.queue, settings, self.engine.clock.now()
                )
            except Exception:
                log.exception("teachers' report notices failed; trying again in %.0f s",
                              self.interval)
            try:
                await prune(self.engine.pool, self.engine.clock.now())
            except Exception:
                log.exception("pruning page request counts failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_reminders(engine: Engine) -> Service:
    reminders = Reminders(engine)
    await reminders.start()
    return reminders


class BroadcastLog:
    """One log line per broadcast started and finished (engine/queue/announce.py), looked for
    every ``interval`` seconds; of several hosts the database lets one write each line."""

    def __init__(self, engine: Engine, interval: float = 2.0) -> None:
        self.engine = engine
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        from engine.queue.announce import log_broadcast_events

        while True:
            try:
                await log_broadcast_events(self.engine.pool, self.engine.clock.now())
            except Exception as exc:  # a database hiccup must not end the serve
                log.debug("broadcast log skipped: %s", exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_broadcast_log(engine: Engine) -> Service:
    service = BroadcastLog(engine)
    service.start()
    return service


async def start_submission(engine: Engine) -> Service:
    """Applications' mail to group addresses (``[submission] listen``)."""
    from inbound.submission import SubmissionServer

    server = SubmissionServer(engine.settings, engine.pool, engine.clock)
    await server.start()
    return server


async def start_audit_keeper(engine: Engine) -> Service:
    """Prunes, verifies and checkpoints the audit log now and once a day (one worker only)."""
    from pathlib import Path

    from engine.staff.audit_keeper import AuditKeeper
    from engine.staff.audit_keys import load_audit_key

    staff = engine.settings.staff
    keeper = AuditKeeper(
        engine.pool, engine.clock, await load_audit_key(engine.pool, staff), staff.audit_keep,
        Path(staff.audit_checkpoints) if staff.audit_checkpoints else None,
    )
    keeper.start()
    return keeper


def start_retention_keeper(engine: Engine) -> Service:
    """Removes finished broadcasts past ``[queue] keep`` now and once a day (one worker)."""
    from engine.queue.retention import RetentionKeeper

    keeper = RetentionKeeper(engine.pool, engine.clock, engine.settings.queue.keep)
    keeper.start()
    return keeper


async def start_backup_keeper(engine: Engine) -> Service:
    """The daily backup at ``[backup] daily_at`` (one worker only: services run in the first)."""
    from engine.staff.backup_keeper import BackupKeeper

    keeper = BackupKeeper(engine.pool, engine.settings, engine.clock)
    keeper.start()
    return keeper
