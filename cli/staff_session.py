"""Running one staff or audit command: the engine, the people and staff stores, one-line
errors; the command line acts as the board and is named in the audit log by the OS user."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import uvloop

from cli.people_session import fail
from engine.config import Settings
from engine.errors import InputError, MamoruError
from engine.people import People
from engine.staff.models import CLI_PRINCIPAL, Principal
from engine.staff.store import Staff

T = TypeVar("T")


def cli_actor() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return replace(CLI_PRINCIPAL, name=f"command line ({user})")


def run_staff(
    settings: Settings, use: Callable[[People, Staff], Coroutine[Any, Any, T]]
) -> T:
    """Open the engine and both stores, run ``use``, close. Bad input exits 2, configuration
    or database problems exit 1."""
    from engine.context import Engine

    async def main() -> T:
        engine = await Engine.open(settings)
        try:
            people = await People.open(engine.pool, settings.people, engine.clock)
            staff = await Staff.open(engine.pool, people.sealer, settings, engine.clock)
            return await use(people, staff)
        finally:
            await engine.close()

    try:
        return uvloop.run(main())
    except MamoruError as exc:
        fail(str(exc), 2 if isinstance(exc, InputError) else 1)
