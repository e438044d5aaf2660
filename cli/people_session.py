"""Running one people command: settings, the engine and its people store, one-line errors.

Shared by the ``schools``, ``groups``, ``accounts``, ``contacts`` and ``rollover`` commands.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
import uvloop
from rich.console import Console

from cli.audit_trail import Trail, audited
from cli.options import ConfigOption as ConfigOption
from cli.options import config_path, require_database
from engine.people import People
from engine.platform.config import Settings, load_settings
from engine.platform.errors import InputError, MamoruError

T = TypeVar("T")



def out() -> Console:
    return Console(highlight=False)


def note(message: str) -> None:
    """A summary line on standard error (standard output may carry data)."""
    Console(stderr=True, highlight=False).print(message, markup=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, highlight=False).print(
        f"mamoru: error: {message}", markup=False, soft_wrap=True
    )
    raise typer.Exit(code)


def settings_of(config: Path | None) -> Settings:
    """The settings of the file named before or after the subcommand (``cli.options``), or
    exit with the configuration error on one line."""
    try:
        loaded = load_settings(config_path(config))
        require_database(loaded)
        return loaded
    except MamoruError as exc:
        fail(str(exc), 1)


def run_people(
    settings: Settings,
    use: Callable[[People], Coroutine[Any, Any, T]],
    trail: Trail[T] | None = None,
) -> T:
    """Open the engine and its people store, run ``use``, close; errors become one line.

    With ``trail`` the command is recorded in the audit log (``cli.audit_trail``). Bad input
    exits 2 and configuration or database problems exit 1, as everywhere in mamoru.
    """
    from engine.delivery.context import Engine

    async def main() -> T:
        engine = await Engine.open(settings)
        try:
            people = await People.open(engine.pool, settings.people, engine.clock)
            if trail is None:
                return await use(people)
            return await audited(engine.pool, settings, engine.clock, trail, use(people))
        finally:
            await engine.close()

    try:
        return uvloop.run(main())
    except MamoruError as exc:
        fail(str(exc), 2 if isinstance(exc, InputError) else 1)
