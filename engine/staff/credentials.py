"""One's own sign-in factors: changing the password, setting TOTP up, replacing or removing it.

Each of these needs the current password and, when the account has TOTP, a current code: a
session alone (a stolen token, a screen left open) cannot take the account over by replacing
its factors. Wrong answers are counted like wrong sign-ins (``backoff``, per login and
source), so a session cannot be used to guess the password either. An administrator's reset of
*another* account is ``accounts.reset_password``.
"""

from __future__ import annotations

from dataclasses import replace

import pyotp

from engine.platform.errors import InputError
from engine.staff import backoff
from engine.staff.accounts import get, totp_required
from engine.staff.passwords import hash_password, verify_password
from engine.staff.sessions import Session, accepted_step, count_failure
from engine.staff.store import TOTP, Staff

WRONG_CURRENT = (
    "現在のパスワードまたは確認コードが違います (wrong current password or TOTP code)"
)


async def confirm_factors(
    staff: Staff, s: Session, password: str, code: str | None, address: str = ""
) -> None:
    """InputError unless ``password`` (and, with TOTP, ``code``) are the account's current
    ones; a failure is counted, and a source that must wait is refused the same way."""
    now = staff.now()
    login = s.member.login
    held = await backoff.held_until(staff.pool, login, backoff.source_of(address), now)
    row = await staff.pool.fetchrow(
        "SELECT password_hash, totp_sealed, totp_last_step FROM staff WHERE id = $1", s.member.id
    )
    ok = await verify_password(row["password_hash"] if row else None, password)
    if held is not None or row is None:
        raise InputError(WRONG_CURRENT)
    if not ok:
        await count_failure(staff, login, address, "wrong current password")
        raise InputError(WRONG_CURRENT)
    if row["totp_sealed"] is None:
        await backoff.clear(staff.pool, login, backoff.source_of(address))
        return
    secret = staff.sealer.open(bytes(row["totp_sealed"]), TOTP)
    step = accepted_step(secret, code or "", now, row["totp_last_step"])
    if step is None:
        await count_failure(staff, login, address, "wrong current TOTP code")
        raise InputError(WRONG_CURRENT)
    await staff.pool.execute(
        "UPDATE staff SET totp_last_step = $2 WHERE id = $1", s.member.id, step
    )
    await backoff.clear(staff.pool, login, backoff.source_of(address))


async def change_password(
    staff: Staff, s: Session, current: str, code: str | None, new: str, address: str = ""
) -> Session:
    """Change one's own password. The other sessions of the account end; this one stays."""
    await confirm_factors(staff, s, current, code, address)
    password_hash = await hash_password(new, s.member.login)
    now = staff.now()
    async with staff.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE staff SET password_hash = $2, password_changed_at = $3, "
            "password_change_required = false, updated_at = $3 WHERE id = $1",
            s.member.id, password_hash, now,
        )
        await conn.execute(
            "UPDATE staff_sessions SET revoked_at = $3 "
            "WHERE staff_id = $1 AND token_hash <> $2 AND revoked_at IS NULL",
            s.member.id, s.token_hash, now,
        )
    m = await get(staff, s.member.id)
    return replace(s, member=m, password_change_required=False)


async def begin_totp(
    staff: Staff, s: Session, password: str, code: str | None, address: str = "",
    issuer: str = "mamoru",
) -> tuple[str, str]:
    """A new TOTP secret for one's own account: (secret, otpauth:// URI for a QR code). It
    replaces the current one (if any) once ``confirm_totp`` sees a code from it."""
    await confirm_factors(staff, s, password, code, address)
    secret = pyotp.random_base32()
    await staff.pool.execute(
        "UPDATE staff SET totp_pending = $2 WHERE id = $1",
        s.member.id, staff.sealer.seal(secret, TOTP),
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=s.member.login, issuer_name=issuer)
    return secret, uri


async def confirm_totp(staff: Staff, s: Session, code: str) -> Session:
    """Switch to the secret ``begin_totp`` handed out, seeing a code from it."""
    row = await staff.pool.fetchrow(
        "SELECT totp_pending FROM staff WHERE id = $1", s.member.id
    )
    if row is None or row["totp_pending"] is None:
        raise InputError("先に確認コードの設定を始めてください (start the TOTP set-up first)")
    secret = staff.sealer.open(bytes(row["totp_pending"]), TOTP)
    step = accepted_step(secret, code, staff.now(), None)
    if step is None:
        raise InputError("確認コードが違います (wrong TOTP code)")
    await staff.pool.execute(
        "UPDATE staff SET totp_sealed = totp_pending, totp_pending = NULL, totp_last_step = $2 "
        "WHERE id = $1",
        s.member.id, step,
    )
    m = await get(staff, s.member.id)
    return replace(s, member=m, limited=False)


async def remove_totp(
    staff: Staff, s: Session, password: str, code: str | None, address: str = ""
) -> Session:
    """Switch TOTP off for one's own account (with a current code). Where the board makes
    TOTP compulsory, the session may then only set it up again."""
    await confirm_factors(staff, s, password, code, address)
    row = await staff.pool.fetchrow(
        "UPDATE staff SET totp_sealed = NULL, totp_pending = NULL WHERE id = $1 "
        "AND totp_sealed IS NOT NULL RETURNING id",
        s.member.id,
    )
    if row is None:
        raise InputError("確認コードは設定されていません (TOTP is not set up)")
    m = await get(staff, s.member.id)
    return replace(s, member=m, limited=await totp_required(staff, s.principal.board_id))
