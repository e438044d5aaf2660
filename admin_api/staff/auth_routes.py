"""Signing in and out, the session, and one's own factors: the password and TOTP.

Changing one's own password and setting TOTP up, replacing or removing it need the current
password and, when TOTP is set, a current code (``engine.staff.credentials``): a session
alone is not enough to take the account over.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from admin_api.staff.deps import (
    AnySession,
    Api,
    Credentials,
    TotpSession,
    audited,
    bearer_token,
    client_address,
)
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    CurrentFactorsIn,
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    SessionOut,
    StaffOut,
    TotpConfirmIn,
    TotpSetupOut,
)
from engine.staff import audit, credentials, sessions
from engine.staff.models import ActorKind, AuthError, LoginRefused, Principal, Role

router = APIRouter(
    prefix="/api/staff", tags=["auth"], route_class=StaffRoute, responses=ERROR_RESPONSES
)


def _session_out(api: Api, s: sessions.Session) -> SessionOut:
    return SessionOut(
        staff=StaffOut.of(s.member), expires_at=s.expires_at,
        idle_timeout_seconds=int(api.staff.settings.idle_timeout),
        totp_setup_required=s.limited, password_change_required=s.password_change_required,
        previous_login_at=s.previous_login_at, previous_login_address=s.previous_login_address,
    )


@router.post("/login", response_model=LoginOut, summary="ログイン / sign in")
async def login(body: LoginIn, request: Request, api: Api) -> LoginOut:
    """Password, then the TOTP code when the account has one. Every refusal gets the same
    answer; after ``[staff] max_failures`` failures in a row from one source for one login,
    that source waits (other sources do not). The answer names the previous sign-in."""
    address = client_address(request)
    try:
        done = await sessions.login(api.staff, body.login, body.password, body.totp_code, address)
    except AuthError as exc:
        who = Principal(
            ActorKind.ANONYMOUS, None, sessions.normal_login(body.login), Role.TEACHER, None,
            address=address,
        )
        detail = exc.reason if isinstance(exc, LoginRefused) else str(exc)
        await api.staff.log(who, "login", sessions.normal_login(body.login),
                            audit.Result.DENIED, detail[:300])
        raise
    s = done.session
    await api.staff.log(s.principal, "login", s.member.login)
    return LoginOut(token=done.token, **_session_out(api, s).model_dump())


@router.post("/logout", status_code=204, response_class=Response, summary="ログアウト / sign out")
async def logout(s: AnySession, api: Api, creds: Credentials) -> Response:
    await sessions.logout(api.staff, bearer_token(creds))
    await api.staff.log(s.principal, "logout", s.member.login)
    return Response(status_code=204)


@router.get("/session", response_model=SessionOut, summary="ログイン中の職員 / who am I")
async def session(s: AnySession, api: Api) -> SessionOut:
    """The signed-in account, when the session ends, what it must do first, and the sign-in
    before this one (so a sign-in that was not one's own is noticed)."""
    return _session_out(api, s)


@router.post("/password", response_model=SessionOut, summary="パスワードの変更 / change password")
async def change_password(
    body: PasswordChangeIn, request: Request, s: AnySession, api: Api
) -> SessionOut:
    """One's own password, with the current password (and code, when TOTP is set). The
    account's other sessions end; this one stays and is no longer restricted."""
    changed = await audited(
        api, s.principal, "password.change", s.member.login,
        credentials.change_password(
            api.staff, s, body.current_password, body.totp_code, body.new_password,
            client_address(request),
        ),
    )
    return _session_out(api, changed)


@router.post("/totp", response_model=TotpSetupOut, summary="確認コードの設定開始 / begin TOTP")
async def begin_totp(
    body: CurrentFactorsIn, request: Request, s: TotpSession, api: Api
) -> TotpSetupOut:
    """A new secret and its otpauth:// URI (for a QR code); it takes effect when confirmed,
    replacing the current one. Needs the current password (and code, when TOTP is set)."""
    secret, uri = await audited(
        api, s.principal, "totp.begin", s.member.login,
        credentials.begin_totp(
            api.staff, s, body.current_password, body.totp_code, client_address(request)
        ),
    )
    return TotpSetupOut(secret=secret, otpauth_uri=uri)


@router.post(
    "/totp/confirm", response_model=SessionOut, summary="確認コードの設定完了 / confirm TOTP"
)
async def confirm_totp(body: TotpConfirmIn, s: TotpSession, api: Api) -> SessionOut:
    """The first code from the authenticator app switches the new secret on."""
    confirmed = await audited(
        api, s.principal, "totp.confirm", s.member.login,
        credentials.confirm_totp(api.staff, s, body.code),
    )
    return _session_out(api, confirmed)


@router.post(
    "/totp/remove", response_model=SessionOut, summary="確認コードの解除 / remove TOTP"
)
async def remove_totp(
    body: CurrentFactorsIn, request: Request, s: TotpSession, api: Api
) -> SessionOut:
    """Switch TOTP off, with the current password and a current code."""
    removed = await audited(
        api, s.principal, "totp.remove", s.member.login,
        credentials.remove_totp(
            api.staff, s, body.current_password, body.totp_code, client_address(request)
        ),
    )
    return _session_out(api, removed)
