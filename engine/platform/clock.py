"""The one clock of mamoru: wall time and monotonic time, replaceable in tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall-clock time."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to, for tests of time-dependent logic."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds


JST = timezone(timedelta(hours=9), "JST")


def jst(moment: datetime) -> datetime:
    """``moment`` in Japan Standard Time, the time every person reading mamoru sees."""
    return moment.astimezone(JST)


def jst_text(moment: datetime | None, seconds: bool = True) -> str:
    """``moment`` as people read it: Japan time, "2026-11-23 09:05:00" ("" for None). The one
    format of tables and CSV cells; JSON keeps ISO 8601 with its offset instead."""
    if moment is None:
        return ""
    return jst(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
