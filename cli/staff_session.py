"""Running one staff or audit command: the engine, the people and staff stores, one-line
errors. The command line acts as the board and is named in the audit log by the OS user,
unless told to act as a staff account (``--as LOGIN``) or an application's API key
(``--api-key-file FILE``): then that account's or key's rights apply and the audit log names
it (``acting_principal``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop

from cli.audit_trail import cli_actor, os_user
from cli.people_session import fail
from engine.people import People
from engine.platform.config import Settings
from engine.platform.errors import InputError, MamoruError
from engine.staff import accounts, apikeys, sessions
from engine.staff.models import AuthError, Principal, RightsError
from engine.staff.store import Staff

T = TypeVar("T")


AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Act as this staff login: its rights, named in the audit log."),
]
ApiKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="Act as the API key in this file (mak_...; never on the command line).",
    ),
]


def read_api_key(path: Path) -> str:
    """The key in ``path`` (its first line); InputError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8-sig").strip().splitlines()
    except OSError as exc:
        raise InputError(
            f"--api-key-file {path} を読めません ({exc.strerror}) / cannot be read"
        ) from None
    if not text or not text[0].strip().startswith(apikeys.KEY_PREFIX):
        raise InputError(
            f"--api-key-file {path} に API キー (mak_...) がありません / no API key in the file"
        )
    return text[0].strip()


async def acting_principal(
    staff: Staff, as_login: str | None, api_key_file: Path | None
) -> Principal:
    """Who the command acts as: a staff account, an API key, or (neither) the command line
    with the board's rights. A disabled account or key is refused (AuthError)."""
    if as_login and api_key_file:
        raise InputError("--as と --api-key-file は同時に使えません (give one of them)")
    if api_key_file is not None:
        key = await apikeys.principal_of_key(staff, read_api_key(api_key_file), "command line")
        return replace(key, name=f"{key.name} (command line: {os_user()})")
    if as_login:
        member = await accounts.find(staff, as_login)
        if member.disabled_at is not None:
            raise AuthError(f"職員「{member.login}」は無効です (the account is disabled)")
        who = await sessions.principal_of(staff, member, "command line")
        return replace(who, name=f"{member.login} (command line: {os_user()})")
    return cli_actor()


def run_staff(
    settings: Settings, use: Callable[[People, Staff], Coroutine[Any, Any, T]]
) -> T:
    """Open the engine and both stores, run ``use``, close. Bad input exits 2, configuration
    or database problems exit 1."""
    from engine.delivery.context import Engine

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
    except (AuthError, RightsError) as exc:
        fail(str(exc), 2)
    except MamoruError as exc:
        fail(str(exc), 2 if isinstance(exc, InputError) else 1)
