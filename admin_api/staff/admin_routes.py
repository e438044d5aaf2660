"""Managing staff: accounts (board; a school's administrator for their own school), the TOTP
policy and API keys (board), each within the caller's own board (engine/staff/managing.py);
the sender addresses and the organisation (ids) a caller may use in a broadcast."""

from __future__ import annotations

from fastapi import APIRouter

from admin_api.staff.deps import Actor, Api, FullSession, audited
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    ApiKeyOut,
    IdPath,
    IdQuery,
    NewApiKeyIn,
    NewApiKeyOut,
    NewStaffIn,
    OrganisationOut,
    PasswordResetIn,
    PolicyIn,
    PolicyOut,
    SenderOut,
    StaffOut,
)
from engine.staff import accounts, apikeys, managing
from engine.staff.organisation import organisation
from engine.staff.senders import list_senders

router = APIRouter(
    prefix="/api/staff", tags=["staff"], route_class=StaffRoute, responses=ERROR_RESPONSES
)


@router.get("/accounts", response_model=list[StaffOut], summary="職員の一覧 / list staff")
async def list_accounts(
    s: FullSession, api: Api, organisation_id: IdQuery = None
) -> list[StaffOut]:
    """The board sees its own board's staff (or one organisation's); a school administrator
    their school's."""
    return [
        StaffOut.of(m)
        for m in await managing.list_accounts(api.staff, s.principal, organisation_id)
    ]


@router.post(
    "/accounts", response_model=StaffOut, status_code=201, summary="職員の追加 / add staff"
)
async def add_account(body: NewStaffIn, s: FullSession, api: Api) -> StaffOut:
    """The board adds anyone to its own board; a school administrator adds teachers to their
    own school."""
    m = await audited(
        api, s.principal, "staff.add", body.login.strip().lower()[:64],
        managing.add_account(api.staff, s.principal, accounts.NewStaff(
            body.login, body.name, body.role, body.organisation_id, body.password,
            tuple(body.class_ids), tuple(body.group_ids),
        )),
        detail=f"role={body.role.value} organisation={body.organisation_id}",
    )
    return StaffOut.of(m)


@router.post(
    "/accounts/{staff_id}/disable", response_model=StaffOut, summary="職員の無効化 / disable"
)
async def disable_account(staff_id: IdPath, s: FullSession, api: Api) -> StaffOut:
    """Disabled, never deleted: the audit log keeps the name. Its sessions end at once."""
    return StaffOut.of(await audited(
        api, s.principal, "staff.disable", f"staff {staff_id}",
        managing.disable_account(api.staff, s.principal, staff_id),
    ))


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
    return StaffOut.of(await audited(
        api, s.principal, "staff.reset_password", f"staff {staff_id}",
        managing.reset_password(api.staff, s.principal, staff_id, body.password,
                                body.clear_totp),
        detail="clear_totp" if body.clear_totp else "",
    ))


@router.get("/senders", response_model=list[SenderOut], summary="差出人 / sender addresses")
async def senders(who: Actor, api: Api) -> list[SenderOut]:
    """The From addresses the caller's school (or board) may send as, for staff and API keys
    alike; the first is the default. The operator registers them (`mamoru senders add`)."""
    org = who.organisation_id
    found = await list_senders(api.staff.pool, org) if org is not None else []
    return [SenderOut(address=x.address, display_name=x.display_name) for x in found]


@router.get("/organisation", response_model=OrganisationOut,
            summary="組織 (学校・学年・組・グループ) の一覧 / what you may send to, with ids")
async def organisation_list(who: Actor, api: Api) -> OrganisationOut:
    """The schools, grades, classes (of the current school year) and groups the caller may
    name in a broadcast's ``audience``, with their ids: the board's staff and keys the whole
    board, a school's its own school, a teacher their own classes and groups."""
    o = await organisation(api.staff.pool, who, api.staff.now())
    return OrganisationOut.model_validate(o, from_attributes=True)


@router.get("/policy", response_model=PolicyOut, summary="ログインの方針 / sign-in policy")
async def get_policy(s: FullSession, api: Api) -> PolicyOut:
    """The caller's board's policy (a school's staff are under their board's)."""
    return PolicyOut(totp_required=await managing.totp_required(api.staff, s.principal))


@router.put("/policy", response_model=PolicyOut, summary="確認コードの必須化 / require TOTP")
async def set_policy(body: PolicyIn, s: FullSession, api: Api) -> PolicyOut:
    """The board's staff change their own board's policy; other boards' stay as they are."""
    await audited(api, s.principal, "policy.totp_required", str(body.totp_required).lower(),
                  managing.set_totp_required(api.staff, s.principal, body.totp_required))
    return PolicyOut(totp_required=body.totp_required)


def _key_out(k: apikeys.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id, prefix=k.prefix, name=k.name, organisation_id=k.organisation_id,
        created_at=k.created_at, disabled_at=k.disabled_at, last_used_at=k.last_used_at,
    )


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="API キーの一覧 / API keys")
async def list_keys(s: FullSession, api: Api) -> list[ApiKeyOut]:
    """The keys of the caller's board and its schools."""
    return [_key_out(k) for k in await managing.list_keys(api.staff, s.principal)]


@router.post(
    "/api-keys", response_model=NewApiKeyOut, status_code=201,
    summary="API キーの発行 / issue an API key",
)
async def create_key(body: NewApiKeyIn, s: FullSession, api: Api) -> NewApiKeyOut:
    """The key is in this answer only; mamoru keeps just its hash."""
    text, key = await audited(
        api, s.principal, "api_key.create", f"organisation {body.organisation_id}",
        managing.create_key(api.staff, s.principal, body.organisation_id, body.name),
        object_of=lambda made: f"api_key {made[1].id} ({made[1].prefix}…)",
    )
    return NewApiKeyOut(key=text, **_key_out(key).model_dump())


@router.post(
    "/api-keys/{key_id}/disable", response_model=ApiKeyOut, summary="API キーの無効化 / disable"
)
async def disable_key(key_id: IdPath, s: FullSession, api: Api) -> ApiKeyOut:
    return _key_out(await audited(
        api, s.principal, "api_key.disable", f"api_key {key_id}",
        managing.disable_key(api.staff, s.principal, key_id),
    ))
