"""A sign-in in two steps (the staff screens): the password, then the TOTP code alone.

After the right password for an account with TOTP, ``begin`` gives a pending sign-in: a value
sealed with the people key (engine/platform/sealing.py: nobody can make or change one) that
names the account, ends after ``PENDING_SECONDS``, is bound to the browser (a hash of its
pre-session cookie) and to the source the password came from, and to the password as it was
(a change or reset voids it). The browser holds it (an HttpOnly cookie) and ``finish`` takes it
with the code. The code step has the back-off of engine/staff/sessions.py: a source held back
is refused, and a wrong or reused code counts as a failure like a wrong password; the back-off
is cleared only when the session opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from engine.platform.sealing import SealError
from engine.staff import backoff
from engine.staff.models import AuthError, LoginRefused
from engine.staff.sessions import (
    Login,
    account_row,
    check_code,
    check_password,
    open_session,
)
from engine.staff.store import Staff

PENDING_SECONDS = 300
_PURPOSE = "staff.pending_login"
_CODE_WRONG = "確認コードが違います (wrong or reused TOTP code)"
_AGAIN = (
    "ログインの途中で時間が過ぎたか、別のブラウザからの操作です。ログイン ID とパスワードから"
    "やり直してください (the pending sign-in expired or belongs to another browser)"
)


class PendingExpired(AuthError):
    """The pending sign-in is over (time, another browser or source, the password changed):
    start again from the password."""


@dataclass(frozen=True)
class Pending:
    """The sealed value for the browser to hold, and the login it is for."""

    value: str
    login: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _changed(row: asyncpg.Record) -> str:
    """When the password was last set (a change or a reset voids a pending sign-in; a rehash
    of the same password at sign-in does not)."""
    at = row["password_changed_at"]
    return at.isoformat() if at is not None else ""


async def begin(
    staff: Staff, login_id: str, password: str, binding: str, address: str = ""
) -> Login | Pending:
    """The session when the account has no TOTP; else the pending sign-in that waits for the
    code (AuthError as ``sessions.login`` for a wrong password). ``binding``: the browser's
    pre-session cookie."""
    row, weak = await check_password(staff, login_id, password, address)
    if row["totp_sealed"] is None:
        return await open_session(staff, row, None, weak, address)
    data = {
        "id": row["id"], "login": row["login"], "weak": weak,
        "until": (staff.now() + timedelta(seconds=PENDING_SECONDS)).timestamp(),
        "browser": _digest(binding), "source": _digest(backoff.source_of(address)),
        "password": _changed(row),
    }
    sealed = staff.sealer.seal(json.dumps(data), _PURPOSE)
    return Pending(base64.urlsafe_b64encode(sealed).decode("ascii"), row["login"])


def login_of(staff: Staff, value: str) -> str:
    """The login a pending sign-in is for ("" when it is not one of ours), for the audit."""
    try:
        return str(_open(staff, value).get("login", ""))
    except AuthError:
        return ""


def _open(staff: Staff, value: str) -> dict[str, object]:
    try:
        data = json.loads(staff.sealer.open(base64.urlsafe_b64decode(value.encode()), _PURPOSE))
    except (SealError, ValueError, binascii.Error):
        raise PendingExpired(_AGAIN) from None
    if not isinstance(data, dict):
        raise PendingExpired(_AGAIN)
    return data


async def finish(
    staff: Staff, value: str, binding: str, code: str, address: str = ""
) -> Login:
    """The session of a pending sign-in and its code, from the same browser and source."""
    data = _open(staff, value)
    now = staff.now()
    until, staff_id = data.get("until"), data.get("id")
    if (
        not isinstance(until, float) or until <= now.timestamp()
        or not isinstance(staff_id, int)
        or not hmac.compare_digest(str(data.get("browser")), _digest(binding))
        or not hmac.compare_digest(str(data.get("source")),
                                   _digest(backoff.source_of(address)))
    ):
        raise PendingExpired(_AGAIN)
    row = await account_row(staff, staff_id)
    if (
        row is None or row["disabled_at"] is not None or row["totp_sealed"] is None
        or row["login"] != data.get("login")
        or not hmac.compare_digest(str(data.get("password")), _changed(row))
    ):
        raise PendingExpired(_AGAIN)
    held = await backoff.held_until(staff.pool, row["login"], backoff.source_of(address), now)
    if held is not None:
        raise LoginRefused(_CODE_WRONG, f"source held back until {held.isoformat()}")
    if not code.strip():
        raise AuthError("確認コード (6 桁) を入れてください (the TOTP code is required)")
    step = await check_code(staff, row, code, address)
    return await open_session(staff, row, step, bool(data.get("weak")), address)
