"""Prometheus metrics of the engine, served by ``mamoru serve`` on ``metrics.listen``.

One endpoint per host, whatever the number of workers: with several, serve runs
prometheus-client's multiprocess mode (``serve_all_workers``): every worker writes its values
to files in a directory of its own (``PROMETHEUS_MULTIPROC_DIR``, set before the workers are
spawned), and the serve process answers ``metrics.listen`` from all of them. Counters and the
histogram are summed over the workers (a worker that stopped still counts); each gauge says how
its workers' values combine (``multiprocess_mode``; ignored with one worker): the shaping gauges
are summed (each egress address belongs to one worker), the queue's and the backup's are the
largest, the audit chain's the newest.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from engine.platform.config import parse_host_port

DELIVERIES = Counter(
    "mamoru_deliveries_total",
    "Delivery attempts by outcome (delivered, deferred, failed).",
    ["outcome"],
)
SEND_SECONDS = Histogram(
    "mamoru_send_seconds",
    "Time from taking a delivery to its SMTP outcome.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUEUE_DEPTH = Gauge(
    "mamoru_queue_depth",
    "Deliveries by state, as last counted by this process.",
    ["state"],
    multiprocess_mode="livemax",
)
AUDIT_CHAIN_INTACT = Gauge(
    "mamoru_audit_chain_intact",
    "1 while the audit log's chain and checkpoints verify, 0 once they do not (alert on 0).",
    multiprocess_mode="livemostrecent",
)
FAILED_BY_CATEGORY = Counter(
    "mamoru_failed_deliveries_total",
    "Deliveries that failed for good, by error category (bounce/classify/categories.py).",
    ["category"],
)
QUEUE_OLDEST_DUE = Gauge(
    "mamoru_queue_oldest_due_seconds",
    "How long the longest-waiting due delivery has been due (0: nothing waits); alert on it.",
    multiprocess_mode="livemax",
)
BACKUP_LAST_SUCCESS = Gauge(
    "mamoru_backup_last_success_timestamp",
    "Unix time of the newest backup archive serve knows of (alert when older than a day).",
    multiprocess_mode="max",
)
BACKUP_FAILED = Gauge(
    "mamoru_backup_failed",
    "1 after serve's daily backup failed, 0 after it succeeded (alert on 1).",
    multiprocess_mode="livemostrecent",
)
CLAIMED = Counter("mamoru_claimed_total", "Deliveries claimed from the queue.")
SHAPING_RATE = Gauge(
    "mamoru_shaping_rate", "Messages per second the shaper allows now.", ["source", "site"],
    multiprocess_mode="livesum",
)
SHAPING_CONNECTIONS = Gauge(
    "mamoru_shaping_connections", "Connections open now.", ["source", "site"],
    multiprocess_mode="livesum",
)
SHAPING_SUSPENDED = Gauge(
    "mamoru_shaping_suspended", "1 while the (source, site) is suspended.", ["source", "site"],
    multiprocess_mode="livesum",
)
BLOCKS = Counter(
    "mamoru_shaping_blocks_total",
    "Blocks: a site refused an egress address (alert when this grows).",
    ["source", "site"],
)
SHAPING_BLOCKED = Gauge(
    "mamoru_shaping_blocked",
    "1 while a site blocks the egress address (sending there paused, probing).",
    ["source", "site"],
    multiprocess_mode="livesum",
)
BLOCKED_DELIVERIES = Counter(
    "mamoru_blocked_deliveries_total",
    "Deliveries refused because the site blocked our address; requeued, never failed.",
    ["site"],
)
OWN_FAULT = Counter(
    "mamoru_own_fault_deferrals_total",
    "Replies that said we sent too fast; the delivery went round again without an attempt.",
)


def serve_metrics(listen: str) -> tuple[str, int] | None:
    """Start the HTTP endpoint in a background thread; returns where it listens."""
    if not listen:
        return None
    host, port = parse_host_port("metrics.listen", listen, 9464)
    start_http_server(port, addr=host)
    return host, port


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class AllWorkers:
    """The host's one endpoint for ``count`` spawned workers (multiprocess mode).

    ``start()`` before spawning: it makes the directory and names it in the environment the
    workers inherit; ``serve()`` once listening is wanted; ``worker_gone(pid)`` for each worker
    that ended; ``close()`` at the end removes the directory.
    """

    def __init__(self) -> None:
        self.directory = ""
        self._previous: str | None = None

    def start(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="mamoru-metrics-")
        self._previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = self.directory

    def serve(self, listen: str) -> tuple[str, int] | None:
        if not listen:
            return None
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        host, port = parse_host_port("metrics.listen", listen, 9464)
        start_http_server(port, addr=host, registry=registry)
        return host, port

    def worker_gone(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self._previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous
        shutil.rmtree(self.directory, ignore_errors=True)


def in_worker_of_many() -> bool:
    """True in a worker whose values the serve process publishes (multiprocess mode)."""
    return bool(os.environ.get(MULTIPROC_ENV))
