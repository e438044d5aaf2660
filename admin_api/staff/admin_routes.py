"""Managing staff: accounts (board; a school's administrator for their own school), the TOTP
policy and API keys (board)."""

from __future__ import annotations

from fastapi import APIRouter

from admin_api.staff.deps import Api, FullSession, audited
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    ApiKeyOut,
    IdPath,
    IdQuery,
    NewApiKeyIn,
    NewApiKeyOut,
    NewStaffIn,
    PasswordResetIn,
    PolicyIn,
    PolicyOut,
    StaffOut,
)
from engine.staff import accounts, apikeys
from engine.staff.models import RightsError, Role, StaffMember
from engine.staff.rights import not_found, require_admin_of, require_board

router = APIRouter(
    prefix="/api/staff", tags=["staff"], route_class=StaffRoute, responses=ERROR_RESPONSES
)


@router.get("/accounts", response_model=list[StaffOut], summary="職員の一覧 / list staff")
async def list_accounts(
    s: FullSession, api: Api, organisation_id: IdQuery = None
) -> list[StaffOut]:
    """The board sees everyone (or one organisation's); a school administrator their school's."""
    if s.member.role is Role.TEACHER:
        require_board(s.principal)
    org = organisation_id if s.member.role is Role.BOARD else s.member.organisation_id
    return [StaffOut.of(m) for m in await accounts.list_staff(api.staff, org)]


@router.post(
    "/accounts", response_model=StaffOut, status_code=201, summary="職員の追加 / add staff"
)
async def add_account(body: NewStaffIn, s: FullSession, api: Api) -> StaffOut:
    """The board adds anyone; a school administrator adds teachers to their own school."""

    async def add() -> StaffMember:
        require_admin_of(s.principal, body.organisation_id)
        if s.member.role is Role.SCHOOL and body.role is not Role.TEACHER:
            require_board(s.principal)
        return await accounts.add(api.staff, accounts.NewStaff(
            body.login, body.name, body.role, body.organisation_id, body.password,
            tuple(body.class_ids), tuple(body.group_ids),
        ))

    m = await audited(
        api, s.principal, "staff.add", body.login.strip().lower()[:64], add(),
        detail=f"role={body.role.value} organisation={body.organisation_id}",
    )
    return StaffOut.of(m)


async def _managed(api: Api, s: FullSession, staff_id: int) -> StaffMember:
    """The account, if the caller may manage it (else "not found" for other schools)."""
    m = await accounts.get(api.staff, staff_id)
    if s.member.role is Role.BOARD:
        return m
    if s.member.role is Role.SCHOOL and m.organisation_id == s.member.organisation_id:
        if m.role is not Role.TEACHER and m.id != s.member.id:
            require_board(s.principal)
        return m
    raise not_found(f"職員 {staff_id} ")


@router.post(
    "/accounts/{staff_id}/disable", response_model=StaffOut, summary="職員の無効化 / disable"
)
async def disable_account(staff_id: IdPath, s: FullSession, api: Api) -> StaffOut:
    """Disabled, never deleted: the audit log keeps the name. Its sessions end at once."""

    async def disable() -> StaffMember:
        await _managed(api, s, staff_id)
        return await accounts.disable(api.staff, staff_id)

    return StaffOut.of(await audited(api, s.principal, "staff.disable", f"staff {staff_id}",
                                     disable()))


@router.post(
    "/accounts/{staff_id}/password", response_model=StaffOut,
    summary="パスワードの再設定 / reset password",
)
async def reset_password(
    staff_id: IdPath, body: PasswordResetIn, s: FullSession, api: Api
) -> StaffOut:
    """Another account's new password (an administrator's action); ends the waits of every
    source for its login and its sessions. One's own password is changed with the current
    factors instead (``POST /api/staff/password``): this path would skip them."""

    async def reset() -> StaffMember:
        if staff_id == s.member.id:
            raise RightsError(
                "自分のパスワードは再設定できません。POST /api/staff/password で、現在の"
                "パスワード (と確認コード) を入れて変更してください "
                "(an administrator's reset is for other accounts; change your own password "
                "with the current factors)"
            )
        await _managed(api, s, staff_id)
        return await accounts.reset_password(api.staff, staff_id, body.password, body.clear_totp)

    return StaffOut.of(await audited(
        api, s.principal, "staff.reset_password", f"staff {staff_id}", reset(),
        detail="clear_totp" if body.clear_totp else "",
    ))


@router.get("/policy", response_model=PolicyOut, summary="ログインの方針 / sign-in policy")
async def get_policy(s: FullSession, api: Api) -> PolicyOut:
    return PolicyOut(totp_required=await accounts.totp_required(api.staff))


@router.put("/policy", response_model=PolicyOut, summary="確認コードの必須化 / require TOTP")
async def set_policy(body: PolicyIn, s: FullSession, api: Api) -> PolicyOut:
    async def change() -> None:
        require_board(s.principal)
        await accounts.set_totp_required(api.staff, body.totp_required)

    await audited(api, s.principal, "policy.totp_required", str(body.totp_required).lower(),
                  change())
    return PolicyOut(totp_required=body.totp_required)


def _key_out(k: apikeys.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id, prefix=k.prefix, name=k.name, organisation_id=k.organisation_id,
        created_at=k.created_at, disabled_at=k.disabled_at, last_used_at=k.last_used_at,
    )


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="API キーの一覧 / API keys")
async def list_keys(s: FullSession, api: Api) -> list[ApiKeyOut]:
    require_board(s.principal)
    return [_key_out(k) for k in await apikeys.list_keys(api.staff)]


@router.post(
    "/api-keys", response_model=NewApiKeyOut, status_code=201,
    summary="API キーの発行 / issue an API key",
)
async def create_key(body: NewApiKeyIn, s: FullSession, api: Api) -> NewApiKeyOut:
    """The key is in this answer only; mamoru keeps just its hash."""

    async def create() -> tuple[str, apikeys.ApiKey]:
        require_board(s.principal)
        return await apikeys.create(api.staff, body.organisation_id, body.name, s.member.id)

    text, key = await audited(
        api, s.principal, "api_key.create", f"organisation {body.organisation_id}", create(),
        object_of=lambda made: f"api_key {made[1].id} ({made[1].prefix}…)",
    )
    return NewApiKeyOut(key=text, **_key_out(key).model_dump())


@router.post(
    "/api-keys/{key_id}/disable", response_model=ApiKeyOut, summary="API キーの無効化 / disable"
)
async def disable_key(key_id: IdPath, s: FullSession, api: Api) -> ApiKeyOut:
    async def disable() -> apikeys.ApiKey:
        require_board(s.principal)
        return await apikeys.disable(api.staff, key_id)

    return _key_out(await audited(api, s.principal, "api_key.disable", f"api_key {key_id}",
                                  disable()))
