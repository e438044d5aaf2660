"""The command line in the audit log: every command that changes something (or hands out
personal data) is recorded with the OS user who ran it, also when it was refused.

``Trail`` names the action and how to describe what was done; ``audited`` runs the work and
appends the entry. The key is loaded before the work starts, so a command whose entry could
not be written does not act at all.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import asyncpg

from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.errors import MamoruError
from engine.staff import audit
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import CLI_PRINCIPAL, Principal

T = TypeVar("T")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def cli_actor() -> Principal:
    return replace(CLI_PRINCIPAL, name=f"command line ({os_user()})")


@dataclass(frozen=True)
class Trail(Generic[T]):
    """One audited command: its action, its object, and what of the result to record."""

    action: str
    object: str = ""
    object_of: Callable[[T], str] | None = None
    detail_of: Callable[[T], str] | None = None


async def audited(
    pool: asyncpg.Pool, settings: Settings, clock: Clock, trail: Trail[Any], work: Awaitable[T]
) -> T:
    """Run ``work`` and record it; a refusal (bad input, unknown name) is recorded as failed."""
    key = await load_audit_key(pool, settings.staff)
    try:
        value = await work
    except MamoruError as exc:
        await audit.record(pool, key, clock.now(), cli_actor(), trail.action, trail.object,
                           audit.Result.FAILED, str(exc)[:300])
        raise
    await audit.record(
        pool, key, clock.now(), cli_actor(), trail.action,
        trail.object_of(value) if trail.object_of else trail.object, audit.Result.OK,
        trail.detail_of(value) if trail.detail_of else "",
    )
    return value
