"""What `mamoru serve` writes to standard error: one line per event, plain or JSON.

``configure(settings)`` is called once per process (serve and each of its workers). Lines say
which host wrote them (``[host] name``). Events with fields pass them as
``log.info(text, extra=fields(event="broadcast.finished", broadcast_id=12, ...))``: plain lines
show the text only, JSON lines carry the fields as keys besides ``message``. Nothing here
redacts: callers never put an address, a name or a token in a line (the tests look).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from engine.platform.config_ops import LogSettings

_FIELDS = "mamoru_fields"
_HANDLER_NAME = "mamoru"


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the event's fields, keys of the JSON line."""
    return {_FIELDS: values}


class PlainFormatter(logging.Formatter):
    def __init__(self, host: str) -> None:
        super().__init__("%(asctime)s %(levelname)s " + host.replace("%", "%%")
                         + " %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, host, logger, message, the
    event's fields, and the exception's text when there is one."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "host": self.host,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, _FIELDS, None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log: LogSettings, host: str = "") -> None:
    """Send the root logger's lines to standard error in ``log.format`` at ``log.level``;
    called again it replaces its own handler (never another one's)."""
    name = host or os.uname().nodename
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(name) if log.format == "json" else PlainFormatter(name))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log.level.upper())
    # Libraries' chatter stays at warnings: their info lines say nothing an operator needs.
    for noisy in ("asyncio", "mail.log", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
