"""Signing in: password, back-off, the TOTP second factor, and sessions that expire.

A session token is 32 random bytes shown once to the client; only its SHA-256 is stored, so a
copy of the database opens no session. A session ends at ``[staff] session_ttl`` after login,
after ``idle_timeout`` without a request (each request moves that end), at logout, and when
its account is disabled or its password reset or changed (a change keeps the session it was
made from).

Wrong passwords and codes are counted per (login, source) in ``backoff``: a source that failed
too often waits, no other source does. A refused sign-in gets one answer whatever the reason
(wrong password, unknown or disabled login, a source that must wait), after the same argon2
work. TOTP (RFC 6238, 30-second steps, one step of clock drift either way) is checked after
the password; a code is accepted once.

A session may be restricted: when the account's board makes TOTP compulsory (each board
has its own policy; a school's staff are under their board's) and the account has none,
it may only set TOTP up (``Session.limited``); when the password is older than
``[staff] password_max_age`` or does not keep the current rule, it may only change the
password (``Session.password_change_required``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pyotp

from engine.platform.errors import InputError
from engine.staff import backoff
from engine.staff.accounts import SELECT_SQL, get, member, totp_required
from engine.staff.models import ActorKind, AuthError, LoginRefused, Principal, StaffMember
from engine.staff.passwords import check_strength, needs_rehash, rehash, verify_password
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
    # The password is too old or breaks the rule: only a password change is allowed.
    password_change_required: bool = False
    # The sign-in before this session's (None: this was the first).
    previous_login_at: datetime | None = None
    previous_login_address: str = ""
    # Identifies this session among the account's (a password change keeps it).
    token_hash: bytes = b""


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


def normal_login(text: str) -> str:
    """The login as the back-off counts it and the table stores it."""
    return text.strip().lower()[:64]


async def count_failure(staff: Staff, login: str, address: str, reason: str) -> LoginRefused:
    """Count one failure of ``login`` from ``address``'s source; the error to raise."""
    wait = await backoff.record_failure(
        staff.pool, login, backoff.source_of(address), staff.now(),
        staff.settings.max_failures, timedelta(seconds=staff.settings.lockout_time),
    )
    if wait:
        reason += f"; this source waits {int(wait.total_seconds())} s"
    return LoginRefused(WRONG, reason)


_ROW_SQL = (
    "SELECT id, login, password_hash, password_changed_at, totp_sealed, totp_last_step, "
    "disabled_at, last_login_at, last_login_address FROM staff WHERE "
)


async def check_password(
    staff: Staff, login_id: str, password: str, address: str = ""
) -> tuple[asyncpg.Record, bool]:
    """The account's row and whether its password breaks the current rule, when ``password``
    is right for an enabled ``login_id`` and the source need not wait; else ``LoginRefused``
    (the one answer, the failure counted). The back-off is not cleared: the second factor
    may still fail (``login``, engine/staff/pending_login.py)."""
    now = staff.now()
    name = normal_login(login_id)
    held = await backoff.held_until(staff.pool, name, backoff.source_of(address), now)
    row = await staff.pool.fetchrow(_ROW_SQL + "login = $1", name)
    # Always the same argon2 work, also for an unknown login and a source that must wait.
    ok = await verify_password(row["password_hash"] if row else None, password)
    if held is not None:
        raise LoginRefused(WRONG, f"source held back until {held.isoformat()}")
    if row is None:
        raise await count_failure(staff, name, address, "unknown login")
    if row["disabled_at"] is not None:
        raise await count_failure(staff, name, address, "disabled account")
    if not ok:
        raise await count_failure(staff, name, address, "wrong password")
    if needs_rehash(row["password_hash"]):
        await staff.pool.execute(
            "UPDATE staff SET password_hash = $2 WHERE id = $1", row["id"], await rehash(password)
        )
    try:
        check_strength(password, name)
        weak = False
    except InputError:  # set before the current rule
        weak = True
    return row, weak


async def login(
    staff: Staff, login_id: str, password: str, code: str | None, address: str = ""
) -> Login:
    """A new session, or AuthError (``LoginRefused`` with the one answer for every refusal;
    the failure counted for this source)."""
    row, weak = await check_password(staff, login_id, password, address)
    step: int | None = None
    if row["totp_sealed"] is not None:
        if not code:
            raise AuthError("確認コード (6 桁) を入れてください (the TOTP code is required)")
        step = await check_code(staff, row, code, address)
    return await open_session(staff, row, step, weak, address)


async def check_code(staff: Staff, row: asyncpg.Record, code: str, address: str) -> int:
    """The time step of the account's right ``code``; a wrong or reused one is counted as a
    failure of this source and refused."""
    secret = staff.sealer.open(bytes(row["totp_sealed"]), TOTP)
    step = accepted_step(secret, code, staff.now(), row["totp_last_step"])
    if step is None:
        await count_failure(staff, row["login"], address, "wrong TOTP code")
        raise AuthError("確認コードが違います (wrong or reused TOTP code)")
    return step


async def open_session(
    staff: Staff, row: asyncpg.Record, step: int | None, weak: bool, address: str
) -> Login:
    """The session of an account whose factors were all checked (``row``: ``_ROW_SQL``'s)."""
    now = staff.now()
    await backoff.clear(staff.pool, row["login"], backoff.source_of(address))
    await staff.pool.execute(
        "UPDATE staff SET totp_last_step = coalesce($2, totp_last_step), last_login_at = $3, "
        "last_login_address = $4, "
        "password_change_required = password_change_required OR $5 WHERE id = $1",
        row["id"], step, now, address, weak,
    )
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=staff.settings.session_ttl)
    await staff.pool.execute(
        "INSERT INTO staff_sessions (token_hash, staff_id, address, created_at, expires_at, "
        "last_seen_at, previous_login_at, previous_login_address) "
        "VALUES ($1, $2, $3, $4, $5, $4, $6, $7)",
        token_hash(token), row["id"], address, now, expires,
        row["last_login_at"], row["last_login_address"],
    )
    m = await get(staff, row["id"])
    who = await principal_of(staff, m, address)
    s = Session(
        m, who, expires,
        limited=not m.totp_enabled and await totp_required(staff, who.board_id),
        password_change_required=_must_change(staff, m, now),
        previous_login_at=row["last_login_at"],
        previous_login_address=row["last_login_address"] or "",
        token_hash=token_hash(token),
    )
    return Login(token, s)


async def account_row(staff: Staff, staff_id: int) -> asyncpg.Record | None:
    """``_ROW_SQL``'s row of one account (for the second step of a sign-in)."""
    row: asyncpg.Record | None = await staff.pool.fetchrow(_ROW_SQL + "id = $1", staff_id)
    return row


def _must_change(staff: Staff, m: StaffMember, now: datetime) -> bool:
    if m.password_change_required:
        return True
    age = staff.settings.password_max_age
    changed = m.password_changed_at
    return bool(age) and changed is not None and now - changed > timedelta(seconds=age)


def accepted_step(secret: str, code: str, now: datetime, last: int | None) -> int | None:
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


SESSION_SQL = SELECT_SQL + """
JOIN staff_sessions x ON x.staff_id = s.id
WHERE x.token_hash = $1 AND x.revoked_at IS NULL AND s.disabled_at IS NULL
"""


async def session(staff: Staff, token: str, address: str = "", touch: bool = True) -> Session:
    """The live session of ``token`` (its idle time starts again unless not ``touch``: a
    screen's automatic refresh is not the user doing something), or AuthError."""
    if not token.startswith(SESSION_PREFIX):
        raise AuthError("ログインしてください (not signed in)")
    now = staff.now()
    digest = token_hash(token)
    row = await staff.pool.fetchrow(SESSION_SQL, digest)
    times = await staff.pool.fetchrow(
        "SELECT expires_at, last_seen_at, previous_login_at, previous_login_address "
        "FROM staff_sessions WHERE token_hash = $1",
        digest,
    )
    if row is None or times is None:
        raise AuthError("ログインしてください (not signed in, or the session was ended)")
    expires: datetime = times["expires_at"]
    if expires <= now:
        raise AuthError("ログインの有効期限が切れました。もう一度ログインしてください (expired)")
    if now - times["last_seen_at"] >= timedelta(seconds=staff.settings.idle_timeout):
        await staff.pool.execute(
            "UPDATE staff_sessions SET revoked_at = $2 WHERE token_hash = $1", digest, now
        )
        raise AuthError(
            "操作のない時間が続いたため、ログインが切れました。もう一度ログインしてください "
            "(the session ended after a time without requests)"
        )
    if touch:
        await staff.pool.execute(
            "UPDATE staff_sessions SET last_seen_at = $2 WHERE token_hash = $1 "
            "AND last_seen_at < $2",
            digest, now,
        )
    m = member(row)
    who = await principal_of(staff, m, address)
    return Session(
        m, who, expires,
        limited=not m.totp_enabled and await totp_required(staff, who.board_id),
        password_change_required=_must_change(staff, m, now),
        previous_login_at=times["previous_login_at"],
        previous_login_address=times["previous_login_address"] or "",
        token_hash=digest,
    )


async def logout(staff: Staff, token: str) -> None:
    await staff.pool.execute(
        "UPDATE staff_sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token), staff.now(),
    )
