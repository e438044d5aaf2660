"""What every ``mamoru`` command shares: ``--config`` wherever it is given, one-line errors.

``--config`` may come before the subcommand (``mamoru --config X status``, kept by the main
callback through ``remember_config``) or after it (``mamoru status --config X``); ``settings``
merges the two. Every error an operator sees is one line on standard error, ``mamoru: error:
...``, with exit code 2 for bad input (``InputError``, usage errors) and 1 for configuration
or database problems (any other ``MamoruError``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import uvloop
from rich.console import Console

from engine.delivery.preflight import check_settings
from engine.platform.config import Settings, load_settings
from engine.platform.errors import InputError, MamoruError

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default: $MAMORU_CONFIG)."),
]

# The --config given before the subcommand; set by the main callback on every invocation.
_before_subcommand: Path | None = None


def remember_config(config: Path | None) -> None:
    global _before_subcommand
    _before_subcommand = config


def config_path(config: Path | None) -> Path | None:
    """The configuration file named before or after the subcommand (the same one if both)."""
    before = _before_subcommand
    if config is not None and before is not None and config.resolve() != before.resolve():
        fail(
            f"--config が 2 回、別のファイルで指定されています / --config given twice with "
            f"different files: {before} and {config}"
        )
    return config if config is not None else before


def exit_code(exc: MamoruError) -> int:
    return 2 if isinstance(exc, InputError) else 1


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on standard error, then exit with ``code``."""
    Console(stderr=True, highlight=False).print(
        f"mamoru: error: {message}", markup=False, soft_wrap=True
    )
    raise typer.Exit(code)


def settings(config: Path | None, creates_database: bool = False) -> Settings:
    """The settings, or exit with the configuration error on one line (exit code 1). Only
    commands that make the embedded database (``init``, ``restore`` onto a new host) pass
    ``creates_database``; every other one refuses a data directory without a database."""
    try:
        loaded = load_settings(config_path(config))
        check_settings(loaded)
        if not creates_database:
            require_database(loaded)
        return loaded
    except MamoruError as exc:
        fail(str(exc), 1)


def require_database(loaded: Settings) -> None:
    """Refuse, naming the directory and the configuration, when the embedded database of
    ``loaded`` does not exist: only ``mamoru init`` creates one (engine/platform/embedded.py)."""
    from engine.platform.embedded import NoDatabase, exists, missing_message

    db = loaded.database
    if not db.url and not exists(db.data_dir):
        raise NoDatabase(missing_message(db.data_dir, loaded.source))


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop; a MamoruError becomes one line and its exit code, and so
    does a database that goes away while the command runs (exit code 1)."""
    from engine.platform.outage import is_unreachable

    try:
        return uvloop.run(make())
    except MamoruError as exc:
        fail(str(exc), exit_code(exc))
    except Exception as exc:
        # Only what can be the database: an OSError such as a port in use is not an outage.
        other_os_error = isinstance(exc, OSError) and not isinstance(exc, ConnectionError)
        if other_os_error or not is_unreachable(exc):
            raise
        fail(f"データベースに接続できません / database unreachable: {exc}", 1)
