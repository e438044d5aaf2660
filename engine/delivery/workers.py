"""Runner processes: ``mamoru serve --workers N`` runs N runners on the same queue.

Each worker is a separate process (started with ``spawn``, so no event loop, pool or socket is
inherited half-open) with its own connections; the queue's ``FOR UPDATE SKIP LOCKED`` claim is
what keeps two workers from taking the same delivery. The parent resolves the database first
(starting the embedded PostgreSQL and applying migrations once), forwards SIGTERM/SIGINT to the
workers, and collects each worker's statistics when it exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import queue
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import uvloop

from engine.delivery._runner import RunStats
from engine.delivery.context import Engine
from engine.platform import logs, metrics
from engine.platform.config import Settings
from engine.platform.db import create_pool, dsn_for
from engine.platform.errors import MamoruError

# Set by a SIGTERM/SIGINT that arrives before the runner's own handlers are installed, so that
# a stop asked for during start-up is not lost.
_early_stop = False


def note_early_stop(_signum: int, _frame: object) -> None:
    global _early_stop
    _early_stop = True


def catch_early_stop() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, note_early_stop)


def default_worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def with_resolved_database(settings: Settings) -> Settings:
    """The settings with the embedded database started and named by URL, schema up to date."""
    dsn = dsn_for(settings.database)

    async def migrate() -> None:
        pool = await create_pool(replace(settings.database, pool_min=1, pool_max=1), dsn)
        await pool.close()

    uvloop.run(migrate())
    return replace(settings, database=replace(settings.database, url=dsn))


def worker_count(settings: Settings, wanted: int) -> int:
    """No more workers than egress sources: each source belongs to one worker, whose shaper
    alone knows its pace (two shapers on one address would each send the carrier's limit)."""
    pools = _sources_by_pool(settings)
    if not pools:
        return wanted
    return max(1, min(wanted, *(len(members) for members in pools.values())))


def _sources_by_pool(settings: Settings) -> dict[str, list[Any]]:
    pools: dict[str, list[Any]] = {}
    for source in settings.egress.get("sources") or []:
        name = source.get("pool", "default") if isinstance(source, dict) else "default"
        pools.setdefault(str(name), []).append(source)
    return pools


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """Worker ``index``'s settings: its share of each pool's egress sources. (The metrics of
    all workers are served by the serve process: ``metrics.AllWorkers``.)"""
    pools = _sources_by_pool(settings)
    if pools and count > 1:
        mine = [s for members in pools.values() for s in members[index::count]]
        settings = replace(settings, egress={**settings.egress, "sources": mine})
    return settings


class Service(Protocol):
    """Something a serve runs beside its first runner (the inbound SMTP server, the pages)."""

    async def stop(self) -> None: ...


#: Starts the services of a serve's first worker on the worker's engine. Given by the caller
#: (``cli/``), so that the engine never imports ``inbound/`` or ``admin_api/``; a module-level
#: function, so that it reaches spawned worker processes.
ServiceStarter = Callable[["Engine"], Awaitable[Sequence[Service]]]


async def run_one(
    settings: Settings,
    exit_when_idle: bool,
    parent_pid: int | None = None,
    on_ready: Callable[[], None] | None = None,
    services: ServiceStarter | None = None,
) -> RunStats:
    """One runner in this process until it is idle (if asked) or signalled to stop; with
    ``services`` (one process of a serve only: one can bind each port) also those, unless
    asked to exit when idle."""
    engine = await Engine.open(settings)
    try:
        runner = await engine.runner()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        if _early_stop:
            runner.stop()
        started: Sequence[Service] = ()
        if not exit_when_idle and not metrics.in_worker_of_many():
            metrics.serve_metrics(settings.metrics.listen)
            if services is not None:
                started = await services(engine)
        if on_ready is not None:
            on_ready()
        watchdog = (
            asyncio.create_task(_stop_when_orphaned(parent_pid, runner.stop))
            if parent_pid is not None
            else None
        )
        try:
            return await runner.run(exit_when_idle=exit_when_idle)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            for service in reversed(started):
                await service.stop()
    finally:
        await engine.close()


def _worker_main(
    settings: Settings, exit_when_idle: bool, results: Any, parent_pid: int, index: int,
    services: ServiceStarter | None,
) -> None:
    catch_early_stop()
    logs.configure(settings.log, settings.host.name)
    stats = uvloop.run(
        run_one(
            settings, exit_when_idle, parent_pid=parent_pid,
            on_ready=lambda: results.put(("ready", None)),
            services=services if index == 0 else None,
        )
    )
    results.put(("stats", dataclasses.asdict(stats)))


async def _stop_when_orphaned(parent_pid: int, stop: Callable[[], None]) -> None:
    """A worker whose parent died (even by SIGKILL) stops gracefully instead of running on."""
    # Linux offers no portable event for this without ctypes (prctl): look once a second.
    while os.getppid() == parent_pid:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    stop()


def run_workers(
    settings: Settings,
    count: int,
    exit_when_idle: bool,
    on_ready: Callable[[], None] | None = None,
    services: ServiceStarter | None = None,
) -> list[RunStats]:
    """Run ``count`` worker processes to completion; returns their statistics.

    ``on_ready`` is called once every worker is running and will stop cleanly on a signal;
    ``services`` start in the first worker.
    """
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                worker_settings(settings, i, count), exit_when_idle, results, os.getpid(), i,
                services,
            ),
            name=f"mamoru-worker-{i}",
        )
        for i in range(count)
    ]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    # One metrics endpoint for the host: the workers write their values to files, this process
    # serves them all (before the workers start: they inherit the directory's name).
    all_workers = metrics.AllWorkers() if settings.metrics.listen and not exit_when_idle else None
    try:
        if all_workers is not None:
            all_workers.start()
        for p in procs:
            p.start()
        if all_workers is not None:
            all_workers.serve(settings.metrics.listen)
        stats: list[RunStats] = []
        ready = 0
        while len(stats) < count:
            try:
                kind, value = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
                continue
            if kind == "ready":
                ready += 1
                if ready == count and on_ready is not None:
                    on_ready()
            else:
                stats.append(RunStats(**value))
        for p in procs:
            p.join()
            if all_workers is not None and p.pid is not None:
                all_workers.worker_gone(p.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if all_workers is not None:
            all_workers.close()
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise MamoruError(f"worker process(es) {', '.join(failed)} exited with an error")
    return stats
