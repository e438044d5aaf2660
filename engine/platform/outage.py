"""Database outages: telling them from failed statements, and saying so once.

While PostgreSQL is down or restarting, every mail or batch would fail with its own error;
logging each one buries the one fact the operator needs. ``OutageLog`` writes one line when
the database becomes unreachable and one when it is back, whatever happens in between. The
asyncpg pool reconnects by itself on the next ``acquire`` once the server answers again, so
callers simply retry (the inbound server by answering 4xx, which makes the sending MTA retry).
"""

from __future__ import annotations

import logging
import time

import asyncpg

UNREACHABLE = "データベースに接続できません。再試行します / database unreachable, retrying"
REACHABLE = "データベースに再接続しました / database reachable again"

# What asyncpg raises when the server cannot be reached or went away, as opposed to a statement
# it refused: connection refused or reset (OSError), a connect timeout, SQLSTATE class 08
# (connection exceptions), 57 (shutdown, "the database system is starting up"), 53 (too many
# connections), 3D000 (the database is gone), and the client's own broken-connection errors.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


#: Errors that mean "the database did not take this statement": unreachable, or a statement it
#: refused. Whoever catches them keeps what it was writing and tries again later.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNREACHABLE_ERRORS)


async def recover(pool: asyncpg.Pool) -> None:
    """After a statement failed on an unreachable or restarted database: every pooled
    connection is replaced at its next use. A connection that lived through a restart can be
    left mid-operation ("cannot switch to state ...; another operation is in progress") and
    would fail every statement after it."""
    await pool.expire_connections()


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached now (trying again later helps)."""
    return isinstance(exc, UNREACHABLE_ERRORS)


class _QuietPoolFloor(logging.Filter):
    """Drops asyncpg's own "Failed to restore the pool connection floor" warnings: during an
    outage the pool logs one, with a traceback, at every retry (1 s, 2 s, ... up to a minute);
    the users of the pool say once that the database is unreachable instead (``OutageLog``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to restore the pool connection floor")


def quiet_pool_reconnects() -> None:
    """Install the filter above on asyncpg's pool logger (once per process)."""
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _QuietPoolFloor) for f in pool_log.filters):
        pool_log.addFilter(_QuietPoolFloor())


class OutageLog:
    """One log line when the database becomes unreachable, one when it answers again."""

    def __init__(self, log: logging.Logger, who: str) -> None:
        self._log = log
        self._who = who
        self._since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def down_for(self) -> float:
        """Seconds since the database became unreachable (0 while it answers)."""
        return 0.0 if self._since is None else time.monotonic() - self._since

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            detail = str(exc) or type(exc).__name__
            self._log.error("%s: %s (%s)", self._who, UNREACHABLE, detail)

    def succeeded(self) -> None:
        if self._since is not None:
            seconds = time.monotonic() - self._since
            self._log.warning(
                "%s: %s (%.0f s, %d failed attempts)", self._who, REACHABLE, seconds,
                self.failures,
            )
            self._since = None
            self.failures = 0


__all__ = [
    "DATABASE_ERRORS",
    "REACHABLE",
    "UNREACHABLE",
    "UNREACHABLE_ERRORS",
    "OutageLog",
    "is_unreachable",
    "recover",
    "quiet_pool_reconnects",
]
