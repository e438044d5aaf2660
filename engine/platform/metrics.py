"""Prometheus metrics of the engine, served by ``mamoru serve`` on ``metrics.listen``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
)
AUDIT_CHAIN_INTACT = Gauge(
    "mamoru_audit_chain_intact",
    "1 while the audit log's chain and checkpoints verify, 0 once they do not (alert on 0).",
)
FAILED_BY_CATEGORY = Counter(
    "mamoru_failed_deliveries_total",
    "Deliveries that failed for good, by error category (bounce/classify/categories.py).",
    ["category"],
)
QUEUE_OLDEST_DUE = Gauge(
    "mamoru_queue_oldest_due_seconds",
    "How long the longest-waiting due delivery has been due (0: nothing waits); alert on it.",
)
BACKUP_LAST_SUCCESS = Gauge(
    "mamoru_backup_last_success_timestamp",
    "Unix time of the newest backup archive serve knows of (alert when older than a day).",
)
BACKUP_FAILED = Gauge(
    "mamoru_backup_failed",
    "1 after serve's daily backup failed, 0 after it succeeded (alert on 1).",
)
CLAIMED = Counter("mamoru_claimed_total", "Deliveries claimed from the queue.")
SHAPING_RATE = Gauge(
    "mamoru_shaping_rate", "Messages per second the shaper allows now.", ["source", "site"]
)
SHAPING_CONNECTIONS = Gauge(
    "mamoru_shaping_connections", "Connections open now.", ["source", "site"]
)
SHAPING_SUSPENDED = Gauge(
    "mamoru_shaping_suspended", "1 while the (source, site) is suspended.", ["source", "site"]
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
