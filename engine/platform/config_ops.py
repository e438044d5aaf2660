"""The [host] and [log] sections of the settings, for engine/platform/config.py.

Kept apart from config.py (which is near its size limit) and needing nothing of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.platform.errors import ConfigError

LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class HostSettings:
    """This serve among several on one PostgreSQL (docs/operation.md, 複数台構成)."""

    # Names this host in runner ids (the queue's lease owners, `mamoru shaping status`), in the
    # runners' heartbeats and in every log line; empty: the system's host name. Give each host
    # its own name.
    name: str = ""


@dataclass(frozen=True)
class LogSettings:
    """What `mamoru serve` writes to standard error (engine/platform/logs.py)."""

    # "plain": one line of text per event; "json": one JSON object per line (log shippers).
    format: str = "plain"
    # debug, info, warning, error.
    level: str = "info"
    # One line per HTTP request: method, route (never a token: the guardians' links carry
    # them in the path), status, milliseconds.
    requests: bool = True


_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_host_and_log(host: HostSettings, log: LogSettings) -> None:
    if host.name and not _HOST_NAME.fullmatch(host.name):
        raise ConfigError(
            f"host.name {host.name!r} must be letters, digits, '.', '_' or '-' (at most 63), "
            "like \"mail-a\""
        )
    if log.format not in LOG_FORMATS:
        raise ConfigError(f"log.format must be \"plain\" or \"json\", not {log.format!r}")
    if log.level not in LOG_LEVELS:
        raise ConfigError(
            f"log.level must be one of {', '.join(LOG_LEVELS)}, not {log.level!r}"
        )
