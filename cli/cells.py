"""How values appear to people on the command line: table and CSV cells in Japan time, JSON
with ISO 8601 times and their offset."""

from __future__ import annotations

from datetime import datetime

from engine.platform.clock import jst, jst_text


def cell(value: object) -> str:
    """A value as a table or CSV cell: times in Japan time (engine.clock.jst_text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return jst_text(value)
    return str(value)


def json_value(value: object) -> str:
    """JSON keeps times in ISO 8601 with their offset (Japan time)."""
    if isinstance(value, datetime):
        return jst(value).isoformat(timespec="seconds")
    return str(value)
