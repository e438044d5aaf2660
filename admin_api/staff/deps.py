"""What every staff endpoint depends on: the engine's parts, who is calling, the audit log.

``StaffApi`` holds the staff and people stores and the queue; the app that mounts the routers
keeps one in ``app.state.staff_api`` (see ``admin_api.staff``). Callers authenticate with
``Authorization: Bearer TOKEN``: a session token (``mss_...``, from ``POST /api/staff/login``)
or an application's API key (``mak_...``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from admin_api import proxies
from engine.people import People
from engine.platform.clock import Clock
from engine.platform.config import AttachmentSettings, Settings
from engine.queue import Queue
from engine.staff import apikeys, sessions
from engine.staff.models import AuthError, Principal, RightsError
from engine.staff.sessions import Session
from engine.staff.store import Staff

T = TypeVar("T")


@dataclass(frozen=True)
class StaffApi:
    staff: Staff
    people: People
    queue: Queue
    max_age: float
    attachments: AttachmentSettings = AttachmentSettings()
    # [http] public_url: the base of every absolute URL the API answers with.
    public_url: str = ""

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, settings: Settings, clock: Clock | None = None
    ) -> StaffApi:
        """Open the stores on the engine's pool (checks the people key, loads the audit key)."""
        people = await People.open(pool, settings.people, clock)
        staff = await Staff.open(pool, people.sealer, settings, people.clock)
        return cls(
            staff, people, Queue(pool, people.sealer), settings.queue.max_age,
            settings.attachments, settings.http.public_url,
        )


def staff_api(request: Request) -> StaffApi:
    api = getattr(request.app.state, "staff_api", None)
    if not isinstance(api, StaffApi):
        raise RuntimeError("app.state.staff_api is not set: see admin_api.staff for the mount")
    return api


Api = Annotated[StaffApi, Depends(staff_api)]

bearer = HTTPBearer(
    auto_error=False,
    description="セッショントークン (mss_...) または API キー (mak_...) / session token or API key",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def client_address(request: Request) -> str:
    """The caller's address, through trusted proxies (admin_api/proxies.py)."""
    return proxies.client_address(request)


def public_url_for(request: Request, api: StaffApi, name: str, **params: object) -> str:
    """The URL of route ``name`` under ``[http] public_url`` (only the path when it is not
    set), never built from the request's Host header, which the client chooses."""
    path = str(request.app.url_path_for(name, **params))
    return api.public_url.rstrip("/") + path


def id_url_for(request: Request, api: StaffApi, name: str) -> str:
    """``public_url_for`` a route taking ``broadcast_id``, with ``{id}`` in its place."""
    return public_url_for(request, api, name, broadcast_id=0).removesuffix("/0") + "/{id}"


def bearer_token(creds: HTTPAuthorizationCredentials | None) -> str:
    if creds is None or not creds.credentials:
        raise AuthError("ログインしてください (not signed in: send Authorization: Bearer TOKEN)")
    return creds.credentials


async def any_session(request: Request, api: Api, creds: Credentials) -> Session:
    """The caller's session, even one that may only set TOTP up."""
    return await sessions.session(api.staff, bearer_token(creds), client_address(request))


async def totp_session(s: Annotated[Session, Depends(any_session)]) -> Session:
    """A session that may at least set TOTP up: not one that must change its password."""
    return _password_ok(s)


def _password_ok(s: Session) -> Session:
    if s.password_change_required:
        raise RightsError(
            "パスワードの変更が必要です (有効期限切れ、または現在の基準より弱いため)。"
            "POST /api/staff/password から変更してください "
            "(the password must be changed first: POST /api/staff/password)"
        )
    return s


async def full_session(s: Annotated[Session, Depends(any_session)]) -> Session:
    """A session without restrictions: its password need not be changed, TOTP is set up where
    the board makes it compulsory."""
    _password_ok(s)
    if s.limited:
        raise RightsError(
            "確認コード (TOTP) の設定が必要です。POST /api/staff/totp から設定してください "
            "(TOTP is compulsory: set it up first)"
        )
    return s


async def actor(request: Request, api: Api, creds: Credentials) -> Principal:
    """A signed-in staff member (with TOTP when compulsory) or an application's API key."""
    token = bearer_token(creds)
    if token.startswith(apikeys.KEY_PREFIX):
        return await apikeys.principal_of_key(api.staff, token, client_address(request))
    return (await full_session(await any_session(request, api, creds))).principal


async def key_actor(request: Request, api: Api, creds: Credentials) -> Principal:
    """An application's API key only."""
    token = bearer_token(creds)
    if not token.startswith(apikeys.KEY_PREFIX):
        raise AuthError("API キーで認証してください (authenticate with an API key: mak_...)")
    return await apikeys.principal_of_key(api.staff, token, client_address(request))


AnySession = Annotated[Session, Depends(any_session)]
TotpSession = Annotated[Session, Depends(totp_session)]
FullSession = Annotated[Session, Depends(full_session)]
Actor = Annotated[Principal, Depends(actor)]
KeyActor = Annotated[Principal, Depends(key_actor)]


async def audited(
    api: StaffApi,
    who: Principal,
    action: str,
    object: str,
    work: Awaitable[T],
    object_of: Callable[[T], str] | None = None,
    detail: str = "",
) -> T:
    """Run ``work`` and record it in the audit log with its result, also when refused
    (``Staff.audited``: the same rule for the API and the command line)."""
    return await api.staff.audited(who, action, object, work, object_of, detail)
