"""Staff accounts: add, list, change a school member's role, disable (never delete), reset
another's password; each board's TOTP policy.

A login ID is one person's: it is stored in lower case, unique, and never freed, because a
disabled account stays so the audit log keeps its name. A board account belongs to the board,
a school administrator's and a teacher's to their school; a teacher is given classes and
groups of that school.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from engine.platform.errors import InputError
from engine.staff import backoff
from engine.staff.models import NotFoundError, Role, StaffMember
from engine.staff.passwords import hash_password
from engine.staff.store import Staff

_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

SELECT_SQL = """
SELECT s.id, s.login, s.name, s.role, s.organisation_id, o.code AS organisation_code,
       s.totp_sealed IS NOT NULL AS totp_enabled, s.disabled_at, s.created_at,
       s.password_changed_at, s.password_change_required,
       (SELECT max(f.blocked_until) FROM staff_login_failures f
        WHERE f.login = s.login) AS locked_until,
       coalesce((SELECT array_agg(class_id ORDER BY class_id) FROM staff_classes
                 WHERE staff_id = s.id), '{}') AS class_ids,
       coalesce((SELECT array_agg(group_id ORDER BY group_id) FROM staff_groups
                 WHERE staff_id = s.id), '{}') AS group_ids
FROM staff s JOIN organisations o ON o.id = s.organisation_id
"""


def normalise_login(text: str) -> str:
    login = text.strip().lower()
    if not _LOGIN.match(login):
        raise InputError(
            f"ログイン ID「{text.strip()[:64]}」は使えません。半角英数字と . _ @ - で 2〜64 文字 "
            f"(a login ID is 2-64 of a-z, 0-9, . _ @ -)"
        )
    return login


def member(r: Any) -> StaffMember:
    return StaffMember(
        id=r["id"], login=r["login"], name=r["name"], role=Role(r["role"]),
        organisation_id=r["organisation_id"], organisation_code=r["organisation_code"],
        totp_enabled=r["totp_enabled"], locked_until=r["locked_until"],
        disabled_at=r["disabled_at"], created_at=r["created_at"],
        class_ids=tuple(r["class_ids"]), group_ids=tuple(r["group_ids"]),
        password_changed_at=r["password_changed_at"],
        password_change_required=r["password_change_required"],
    )


@dataclass(frozen=True)
class NewStaff:
    login: str
    name: str
    role: Role
    organisation_id: int
    password: str
    class_ids: tuple[int, ...] = ()
    group_ids: tuple[int, ...] = ()


async def add(staff: Staff, new: NewStaff) -> StaffMember:
    """Create an account; InputError (nothing stored) for a taken login or a wrong place."""
    login = normalise_login(new.login)
    name = new.name.strip()
    if not name or len(name) > 100:
        raise InputError("氏名を 1〜100 文字で入れてください (a name of 1-100 characters)")
    password_hash = await hash_password(new.password, login)
    now = staff.now()
    async with staff.pool.acquire() as conn, conn.transaction():
        org = await conn.fetchrow(
            "SELECT id, kind FROM organisations WHERE id = $1", new.organisation_id
        )
        if org is None:
            raise InputError(f"学校 {new.organisation_id} はありません (unknown organisation)")
        if (org["kind"] == "board") != (new.role is Role.BOARD):
            raise InputError(
                "教育委員会の職員は教育委員会に、学校管理者と教員は学校に所属します "
                "(board staff belong to the board, school staff to a school)"
            )
        if new.role is not Role.TEACHER and (new.class_ids or new.group_ids):
            raise InputError("組とグループを受け持つのは教員だけです (only teachers get classes)")
        await _check_own(conn, new.organisation_id, new.class_ids, new.group_ids)
        try:
            staff_id: int = await conn.fetchval(
                "INSERT INTO staff (login, name, role, organisation_id, password_hash, "
                "password_changed_at, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING id",
                login, name, new.role.value, new.organisation_id, password_hash, now,
            )
        except asyncpg.UniqueViolationError:
            raise InputError(
                f"ログイン ID「{login}」はすでに使われています (login ID taken; IDs are never "
                f"reused, even of disabled accounts)"
            ) from None
        await conn.executemany(
            "INSERT INTO staff_classes (staff_id, class_id) VALUES ($1, $2)",
            [(staff_id, c) for c in new.class_ids],
        )
        await conn.executemany(
            "INSERT INTO staff_groups (staff_id, group_id) VALUES ($1, $2)",
            [(staff_id, g) for g in new.group_ids],
        )
    return await get(staff, staff_id)


async def _check_own(
    conn: asyncpg.Connection, school_id: int, class_ids: Sequence[int], group_ids: Sequence[int]
) -> None:
    """A teacher's classes and groups must be their school's (a board group is not)."""
    if class_ids:
        rows = await conn.fetch(
            "SELECT c.id FROM classes c JOIN grades g ON g.id = c.grade_id "
            "WHERE c.id = ANY($1::bigint[]) AND g.school_id = $2",
            list(class_ids), school_id,
        )
        bad = sorted(set(class_ids) - {r["id"] for r in rows})
        if bad:
            raise InputError(
                f"組 {bad[0]} はこの学校の組ではありません (not a class of the school)"
            )
    if group_ids:
        rows = await conn.fetch(
            "SELECT id FROM groups WHERE id = ANY($1::bigint[]) AND owner_id = $2",
            list(group_ids), school_id,
        )
        bad = sorted(set(group_ids) - {r["id"] for r in rows})
        if bad:
            raise InputError(
                f"グループ {bad[0]} はこの学校のグループではありません (not a group of the school)"
            )


async def get(staff: Staff, staff_id: int) -> StaffMember:
    row = await staff.pool.fetchrow(SELECT_SQL + " WHERE s.id = $1", staff_id)
    if row is None:
        raise NotFoundError(f"職員 {staff_id} はいません (no staff account {staff_id})")
    return member(row)


async def find(staff: Staff, login: str) -> StaffMember:
    row = await staff.pool.fetchrow(SELECT_SQL + " WHERE s.login = $1", login.strip().lower())
    if row is None:
        raise NotFoundError(f"ログイン ID「{login.strip()[:64]}」の職員はいません (no such login)")
    return member(row)


async def list_staff(
    staff: Staff, organisation_id: int | None = None, include_disabled: bool = True,
    board_id: int | None = None,
) -> list[StaffMember]:
    """Staff of one organisation (None: all), of one board and its schools (None: any)."""
    rows = await staff.pool.fetch(
        SELECT_SQL + " WHERE ($1::bigint IS NULL OR s.organisation_id = $1) "
        "AND ($2 OR s.disabled_at IS NULL) "
        "AND ($3::bigint IS NULL OR o.id = $3 OR o.parent_id = $3) "
        "ORDER BY s.organisation_id, s.login",
        organisation_id, include_disabled, board_id,
    )
    return [member(r) for r in rows]


async def disable(staff: Staff, staff_id: int) -> StaffMember:
    """Disable an account and end its sessions at once; the account and its name stay."""
    now = staff.now()
    async with staff.pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE staff SET disabled_at = $2, updated_at = $2 "
            "WHERE id = $1 AND disabled_at IS NULL RETURNING id",
            staff_id, now,
        )
        if done is None:
            await get(staff, staff_id)  # NotFoundError for an unknown id
            raise InputError(f"職員 {staff_id} はすでに無効です (already disabled)")
        await conn.execute(
            "UPDATE staff_sessions SET revoked_at = $2 "
            "WHERE staff_id = $1 AND revoked_at IS NULL",
            staff_id, now,
        )
    return await get(staff, staff_id)


async def reset_password(
    staff: Staff, staff_id: int, password: str, clear_totp: bool = False
) -> StaffMember:
    """An administrator's reset of *another* account's password (and, for a lost phone, its
    TOTP): the waits of every source for the login end, and so do the account's sessions. The
    API refuses it for one's own account (``admin_api.staff.admin_routes``); one's own password
    is changed with the current factors (``engine.staff.credentials``)."""
    target = await get(staff, staff_id)
    password_hash = await hash_password(password, target.login)
    now = staff.now()
    async with staff.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE staff SET password_hash = $2, password_changed_at = $3, "
            "password_change_required = false, updated_at = $3, "
            "totp_sealed = CASE WHEN $4 THEN NULL ELSE totp_sealed END, "
            "totp_pending = CASE WHEN $4 THEN NULL ELSE totp_pending END "
            "WHERE id = $1",
            staff_id, password_hash, now, clear_totp,
        )
        await backoff.clear(conn, target.login)
        await conn.execute(
            "UPDATE staff_sessions SET revoked_at = $2 "
            "WHERE staff_id = $1 AND revoked_at IS NULL",
            staff_id, now,
        )
    return await get(staff, staff_id)



async def set_role(staff: Staff, staff_id: int, role: Role) -> StaffMember:
    """A school's staff member becomes a school administrator or a teacher (a board account
    stays the board's: it belongs to the board, not to a school). An administrator gives up
    the classes and groups they taught; the account's sessions end, so the new rights apply
    from the next sign-in."""
    target = await get(staff, staff_id)
    if role is Role.BOARD or target.role is Role.BOARD:
        raise InputError(
            "教育委員会の職員の役割は変えられません。学校の職員を学校管理者または教員にします "
            "(board accounts keep their role; school staff become administrator or teacher)"
        )
    if target.role is role:
        raise InputError(f"すでに{role.label_ja}です (already {role.value})")
    now = staff.now()
    async with staff.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE staff SET role = $2, updated_at = $3 WHERE id = $1", staff_id, role.value, now
        )
        if role is not Role.TEACHER:
            await conn.execute("DELETE FROM staff_classes WHERE staff_id = $1", staff_id)
            await conn.execute("DELETE FROM staff_groups WHERE staff_id = $1", staff_id)
        await conn.execute(
            "UPDATE staff_sessions SET revoked_at = $2 "
            "WHERE staff_id = $1 AND revoked_at IS NULL",
            staff_id, now,
        )
    return await get(staff, staff_id)

# The policy row of a board (migration 021), else the default row (no board).
_POLICY = (
    "SELECT {column} FROM staff_policy WHERE board_id = $1 OR board_id IS NULL "
    "ORDER BY board_id NULLS LAST LIMIT 1"
)


async def totp_required(staff: Staff, board_id: int | None) -> bool:
    """Whether the board ``board_id`` makes TOTP compulsory for its staff (a school's staff
    are under their board's policy); None (no board yet): the default row."""
    return bool(await staff.pool.fetchval(_POLICY.format(column="totp_required"), board_id))


async def set_totp_required(staff: Staff, board_id: int, required: bool) -> None:
    """Change one board's policy; other boards' stay as they are."""
    await staff.pool.execute(
        "INSERT INTO staff_policy (board_id, totp_required) VALUES ($1, $2) "
        "ON CONFLICT (board_id) DO UPDATE SET totp_required = EXCLUDED.totp_required",
        board_id, required,
    )
