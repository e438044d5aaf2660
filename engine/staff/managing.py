"""Managing staff within the actor's rights and board: accounts, API keys, the sign-in policy
and reading the audit log.

The HTTP routes (admin_api/staff/admin_routes.py, audit_routes.py) call these and keep no
rules of their own. A board manages its own board's accounts and keys only; a school's
administrator the teachers of their own school (and their own account). Another board's
account, key or organisation is answered exactly as an unknown id is (engine/staff/rights.py).
"""

from __future__ import annotations

from dataclasses import replace

from engine.platform.errors import InputError
from engine.staff import accounts, apikeys, audit
from engine.staff.accounts import NewStaff
from engine.staff.audit_checkpoints import verify_all
from engine.staff.models import ActorKind, NotFoundError, Principal, RightsError, Role, StaffMember
from engine.staff.rights import (
    check_organisation,
    require_admin_of,
    require_board,
    tenant,
)
from engine.staff.store import Staff


def _no_staff(staff_id: int) -> NotFoundError:
    """The answer for a staff id that does not exist (``accounts.get``'s) and for one the
    actor may not manage."""
    return NotFoundError(f"職員 {staff_id} はいません (no staff account {staff_id})")


async def list_accounts(
    staff: Staff, actor: Principal, organisation_id: int | None = None
) -> list[StaffMember]:
    """The board: its own board's staff (or one of its organisations'); a school's
    administrator: their school's; a teacher: refused."""
    if actor.role is Role.TEACHER:
        require_board(actor)
    if actor.role is Role.BOARD:
        return await accounts.list_staff(staff, organisation_id, board_id=tenant(actor))
    return await accounts.list_staff(staff, actor.organisation_id)


async def add_account(staff: Staff, actor: Principal, new: NewStaff) -> StaffMember:
    """The board adds anyone to its own board; a school's administrator adds teachers to their
    own school. Another board's organisation is unknown."""
    await require_admin_of(staff.pool, actor, new.organisation_id)
    if actor.role is Role.SCHOOL and new.role is not Role.TEACHER:
        require_board(actor)
    return await accounts.add(staff, new)


async def managed(staff: Staff, actor: Principal, staff_id: int) -> StaffMember:
    """The account, if ``actor`` may manage it; else the NotFoundError of an unknown id."""
    m = await accounts.get(staff, staff_id)
    if actor.role is Role.BOARD:
        try:
            await check_organisation(staff.pool, actor, m.organisation_id)
        except InputError:
            raise _no_staff(staff_id) from None
        return m
    if actor.role is Role.SCHOOL and m.organisation_id == actor.organisation_id:
        if m.role is not Role.TEACHER and m.id != actor.id:
            require_board(actor)
        return m
    raise _no_staff(staff_id)


async def disable_account(staff: Staff, actor: Principal, staff_id: int) -> StaffMember:
    await managed(staff, actor, staff_id)
    return await accounts.disable(staff, staff_id)



async def change_role(staff: Staff, actor: Principal, staff_id: int, role: Role) -> StaffMember:
    """The board makes one of its schools' staff a school administrator or a teacher; a
    school's administrator may not (they add teachers only), nor may anyone change their own."""
    require_board(actor)
    if actor.kind is ActorKind.STAFF and actor.id == staff_id:
        raise RightsError("自分の役割は変えられません (you cannot change your own role)")
    await managed(staff, actor, staff_id)
    return await accounts.set_role(staff, staff_id, role)

async def reset_password(
    staff: Staff, actor: Principal, staff_id: int, password: str, clear_totp: bool = False
) -> StaffMember:
    """Another account's new password (an administrator's action). One's own is changed with
    the current factors (``credentials``): this path would skip them."""
    if actor.kind is ActorKind.STAFF and actor.id == staff_id:
        raise RightsError(
            "自分のパスワードは再設定できません。POST /api/staff/password で、現在の"
            "パスワード (と確認コード) を入れて変更してください "
            "(an administrator's reset is for other accounts; change your own password "
            "with the current factors)"
        )
    await managed(staff, actor, staff_id)
    return await accounts.reset_password(staff, staff_id, password, clear_totp)


async def totp_required(staff: Staff, actor: Principal) -> bool:
    """The actor's board's policy (a school's staff are under their board's)."""
    return await accounts.totp_required(staff, actor.board_id)


async def set_totp_required(staff: Staff, actor: Principal, required: bool) -> None:
    """The board's staff change their own board's policy, nobody else's."""
    require_board(actor)
    board = tenant(actor)
    if board is None:
        raise NotFoundError("教育委員会がありません (no board to set the policy of)")
    await accounts.set_totp_required(staff, board, required)


async def list_keys(staff: Staff, actor: Principal) -> list[apikeys.ApiKey]:
    require_board(actor)
    return await apikeys.list_keys(staff, tenant(actor))


async def create_key(
    staff: Staff, actor: Principal, organisation_id: int, name: str
) -> tuple[str, apikeys.ApiKey]:
    """A key for the board or one of its schools; another board's organisation is unknown."""
    require_board(actor)
    await check_organisation(staff.pool, actor, organisation_id)
    return await apikeys.create(staff, organisation_id, name, actor.id)


async def disable_key(staff: Staff, actor: Principal, key_id: int) -> apikeys.ApiKey:
    require_board(actor)
    return await apikeys.disable(staff, key_id, tenant(actor))


def audit_filter(actor: Principal, f: audit.AuditFilter) -> audit.AuditFilter:
    """``f`` narrowed to what ``actor`` may read: the board its own board's entries, a
    school's administrator their school's; a teacher none (RightsError)."""
    if actor.role is Role.TEACHER:
        require_board(actor)
    if actor.role is Role.BOARD:
        return replace(f, board_id=tenant(actor))
    return replace(f, organisation_id=actor.organisation_id, board_id=tenant(actor))


async def audit_entries(
    staff: Staff, actor: Principal, f: audit.AuditFilter, limit: int = 100, offset: int = 0,
    count_up_to: int | None = None,
) -> tuple[int, list[audit.AuditEntry]]:
    return await audit.entries(staff.pool, audit_filter(actor, f), limit, offset, count_up_to)


async def audit_newest(
    staff: Staff, actor: Principal, f: audit.AuditFilter
) -> audit.AuditEntry | None:
    return await audit.newest(staff.pool, audit_filter(actor, f))


async def audit_export(staff: Staff, actor: Principal, f: audit.AuditFilter) -> str:
    return await audit.export(staff.pool, audit_filter(actor, f))


async def audit_verify(staff: Staff, actor: Principal) -> audit.Verification:
    """The board checks the whole chain; what it is told names only its own entries."""
    require_board(actor)
    return await verify_all(staff.pool, staff.audit_key, staff.checkpoints, tenant(actor))
