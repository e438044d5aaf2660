"""Signing in: password, lock-out, the TOTP second factor, and sessions that expire.

A session token is 32 random bytes shown once to the client; only its SHA-256 is stored, so a
copy of the database opens no session. A session ends at ``[staff] session_ttl`` after login,
at logout, and when its account is disabled or its password reset.

``max_failures`` wrong passwords or codes in a row lock the account for ``lockout_time``; while
locked even the right password is refused. TOTP (RFC 6238, 30-second steps, one step of clock
drift either way) is checked after the password; a code is accepted once. When the account's
board makes TOTP compulsory (each board has its own policy; a school's staff are under their
board's), an account without it still signs in, but its session may only set TOTP up
(``Session.limited``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pyotp

from engine.platform.errors import InputError
from engine.staff.accounts import SELECT_SQL, get, member, totp_required
from engine.staff.models import ActorKind, AuthError, Principal, StaffMember
from engine.staff.passwords import hash_password, needs_rehash, verify_password
from engine.staff.store import TOTP, Staff

SESSION_PREFIX = "mss_"
WRONG = "ログイン ID またはパスワードが違います (wrong login ID or password)"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class Session:
    member: StaffMember
    principal: Principal
    expires_at: datetime
    # TOTP is compulsory and this account has none yet: only TOTP set-up is allowed.
    limited: bool = False


@dataclass(frozen=True)
class Login:
    token: str
    session: Session


async def principal_of(staff: Staff, m: StaffMember, address: str = "") -> Principal:
    board_id: int | None = await staff.pool.fetchval(
        "SELECT CASE WHEN kind = 'board' THEN id ELSE parent_id END FROM organisations "
        "WHERE id = $1",
        m.organisation_id,
    )
    return Principal(
        ActorKind.STAFF, m.id, m.login, m.role, m.organisation_id, board_id,
        frozenset(m.class_ids), frozenset(m.group_ids), address,
    )


async def login(
    staff: Staff, login_id: str, password: str, code: str | None, address: str = ""
) -> Login:
    """A new session, or AuthError (the failure counted, the account locked when due)."""
    now = staff.now()
    row = await staff.pool.fetchrow(
        "SELECT id, password_hash, totp_sealed, totp_last_step, locked_until, disabled_at "
        "FROM staff WHERE login = $1",
        login_id.strip().lower()[:64],
    )
    ok = await verify_password(row["password_hash"] if row else None, password)
    if row is None or row["disabled_at"] is not None:
        raise AuthError(WRONG)
    if row["locked_until"] is not None and row["locked_until"] > now:
        raise AuthError(
            "ログインの失敗が続いたため、このアカウントは一時的にロックされています。"
            "しばらくしてから、または管理者にパスワードの再設定を依頼してください "
            "(the account is locked after repeated failures; try later or ask for a reset)"
        )
    if not ok:
        await _fail(staff, row["id"], now)
        raise AuthError(WRONG)
    step: int | None = None
    if row["totp_sealed"] is not None:
        if not code:
            raise AuthError("確認コード (6 桁) を入れてください (the TOTP code is required)")
        secret = staff.sealer.open(bytes(row["totp_sealed"]), TOTP)
        step = _accepted_step(secret, code, now, row["totp_last_step"])
        if step is None:
            await _fail(staff, row["id"], now)
            raise AuthError("確認コードが違います (wrong or reused TOTP code)")
    await staff.pool.execute(
        "UPDATE staff SET failed_logins = 0, locked_until = NULL, "
        "totp_last_step = coalesce($2, totp_last_step) WHERE id = $1",
        row["id"], step,
    )
    if needs_rehash(row["password_hash"]):
        await staff.pool.execute(
            "UPDATE staff SET password_hash = $2 WHERE id = $1",
            row["id"], await hash_password(password),
        )
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=staff.settings.session_ttl)
    await staff.pool.execute(
        "INSERT INTO staff_sessions (token_hash, staff_id, address, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        token_hash(token), row["id"], address, now, expires,
    )
    m = await get(staff, row["id"])
    who = await principal_of(staff, m, address)
    limited = not m.totp_enabled and await totp_required(staff, who.board_id)
    return Login(token, Session(m, who, expires, limited))


async def _fail(staff: Staff, staff_id: int, now: datetime) -> None:
    """Count a failure; the one that reaches ``max_failures`` locks the account."""
    await staff.pool.execute(
        "UPDATE staff SET "
        "locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END, "
        "failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END "
        "WHERE id = $1",
        staff_id, staff.settings.max_failures,
        now + timedelta(seconds=staff.settings.lockout_time),
    )


def _accepted_step(secret: str, code: str, now: datetime, last: int | None) -> int | None:
    """The time step ``code`` belongs to (now, or one step either side), if not used yet."""
    totp = pyotp.TOTP(secret)
    plain = code.strip().replace(" ", "")
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if (last is None or step > last) and secrets.compare_digest(
            totp.generate_otp(step).encode(), plain.encode("utf-8")
        ):
            return step
    return None


async def session(staff: Staff, token: str, address: str = "") -> Session:
    """The live session of ``token``, or AuthError."""
    if not token.startswith(SESSION_PREFIX):
        raise AuthError("ログインしてください (not signed in)")
    now = staff.now()
    row = await staff.pool.fetchrow(
        SELECT_SQL + " JOIN staff_sessions x ON x.staff_id = s.id "
        "WHERE x.token_hash = $1 AND x.revoked_at IS NULL AND s.disabled_at IS NULL",
        token_hash(token),
    )
    expires: datetime | None = await staff.pool.fetchval(
        "SELECT expires_at FROM staff_sessions WHERE token_hash = $1", token_hash(token)
    )
    if row is None or expires is None:
        raise AuthError("ログインしてください (not signed in, or the session was ended)")
    if expires <= now:
        raise AuthError("ログインの有効期限が切れました。もう一度ログインしてください (expired)")
    m = member(row)
    who = await principal_of(staff, m, address)
    limited = not m.totp_enabled and await totp_required(staff, who.board_id)
    return Session(m, who, expires, limited)


async def logout(staff: Staff, token: str) -> None:
    await staff.pool.execute(
        "UPDATE staff_sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token), staff.now(),
    )


async def begin_totp(staff: Staff, s: Session, issuer: str = "mamoru") -> tuple[str, str]:
    """A new TOTP secret for the signed-in account: (secret, otpauth:// URI for a QR code).
    It takes effect once ``confirm_totp`` sees a code from it."""
    secret = pyotp.random_base32()
    await staff.pool.execute(
        "UPDATE staff SET totp_pending = $2 WHERE id = $1",
        s.member.id, staff.sealer.seal(secret, TOTP),
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=s.member.login, issuer_name=issuer)
    return secret, uri


async def confirm_totp(staff: Staff, s: Session, code: str) -> Session:
    row = await staff.pool.fetchrow(
        "SELECT totp_pending FROM staff WHERE id = $1", s.member.id
    )
    if row is None or row["totp_pending"] is None:
        raise InputError("先に確認コードの設定を始めてください (start the TOTP set-up first)")
    secret = staff.sealer.open(bytes(row["totp_pending"]), TOTP)
    step = _accepted_step(secret, code, staff.now(), None)
    if step is None:
        raise InputError("確認コードが違います (wrong TOTP code)")
    await staff.pool.execute(
        "UPDATE staff SET totp_sealed = totp_pending, totp_pending = NULL, totp_last_step = $2 "
        "WHERE id = $1",
        s.member.id, step,
    )
    m = await get(staff, s.member.id)
    return replace(s, member=m, limited=False)
