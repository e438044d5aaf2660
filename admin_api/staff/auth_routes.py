"""Signing in and out, the session, and setting up the TOTP second factor."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from admin_api.staff.deps import (
    AnySession,
    Api,
    Credentials,
    audited,
    bearer_token,
    client_address,
)
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    LoginIn,
    LoginOut,
    SessionOut,
    StaffOut,
    TotpConfirmIn,
    TotpSetupOut,
)
from engine.staff import audit, sessions
from engine.staff.models import ActorKind, AuthError, Principal, Role

router = APIRouter(
    prefix="/api/staff", tags=["auth"], route_class=StaffRoute, responses=ERROR_RESPONSES
)


def _session_out(s: sessions.Session) -> SessionOut:
    return SessionOut(
        staff=StaffOut.of(s.member), expires_at=s.expires_at, totp_setup_required=s.limited
    )


@router.post("/login", response_model=LoginOut, summary="ログイン / sign in")
async def login(body: LoginIn, request: Request, api: Api) -> LoginOut:
    """Password, then the TOTP code when the account has one. Wrong passwords and codes are
    counted; the account locks after ``[staff] max_failures`` in a row."""
    address = client_address(request)
    try:
        done = await sessions.login(api.staff, body.login, body.password, body.totp_code, address)
    except AuthError as exc:
        who = Principal(
            ActorKind.ANONYMOUS, None, body.login.strip().lower()[:64], Role.TEACHER, None,
            address=address,
        )
        await api.staff.log(who, "login", body.login.strip().lower()[:64], audit.Result.DENIED,
                            str(exc)[:300])
        raise
    s = done.session
    await api.staff.log(s.principal, "login", s.member.login)
    return LoginOut(
        token=done.token, staff=StaffOut.of(s.member), expires_at=s.expires_at,
        totp_setup_required=s.limited,
    )


@router.post("/logout", status_code=204, response_class=Response, summary="ログアウト / sign out")
async def logout(s: AnySession, api: Api, creds: Credentials) -> Response:
    await sessions.logout(api.staff, bearer_token(creds))
    await api.staff.log(s.principal, "logout", s.member.login)
    return Response(status_code=204)


@router.get("/session", response_model=SessionOut, summary="ログイン中の職員 / who am I")
async def session(s: AnySession) -> SessionOut:
    return _session_out(s)


@router.post("/totp", response_model=TotpSetupOut, summary="確認コードの設定開始 / begin TOTP")
async def begin_totp(s: AnySession, api: Api) -> TotpSetupOut:
    """A new secret and its otpauth:// URI (for a QR code); it takes effect when confirmed."""
    secret, uri = await sessions.begin_totp(api.staff, s)
    await api.staff.log(s.principal, "totp.begin", s.member.login)
    return TotpSetupOut(secret=secret, otpauth_uri=uri)


@router.post(
    "/totp/confirm", response_model=SessionOut, summary="確認コードの設定完了 / confirm TOTP"
)
async def confirm_totp(body: TotpConfirmIn, s: AnySession, api: Api) -> SessionOut:
    """The first code from the authenticator app switches TOTP on for this account."""
    confirmed = await audited(
        api, s.principal, "totp.confirm", s.member.login,
        sessions.confirm_totp(api.staff, s, body.code),
    )
    return _session_out(confirmed)
