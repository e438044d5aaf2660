"""Applications that submit by HTTP: a broadcast by API key with an idempotency key.

``Idempotency-Key`` is required: a client that retries after a timeout sends the same key and
gets the first request's broadcast back (``replayed: true``, status 200) instead of sending
twice. The same key with a different body is refused (409).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from admin_api.staff.broadcast_routes import create_broadcast, status_of
from admin_api.staff.deps import Api, KeyActor, id_url_for
from admin_api.staff.errors import ERROR_RESPONSES, ErrorBody, StaffRoute
from admin_api.staff.schemas import BroadcastCreatedOut, BroadcastIn, BroadcastStatusOut, IdPath

router = APIRouter(
    prefix="/api/apps", tags=["applications"], route_class=StaffRoute,
    responses={
        **ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "idempotency key reused / 冪等キーの再利用"},
    },
)


@router.post(
    "/broadcasts",
    response_model=BroadcastCreatedOut,
    status_code=201,
    responses={200: {"model": BroadcastCreatedOut, "description": "a retry: nothing sent again"}},
    summary="アプリからの配信 / submit a broadcast",
)
async def submit(
    body: BroadcastIn,
    actor: KeyActor,
    api: Api,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
) -> BroadcastCreatedOut:
    url = id_url_for(request, api, "app_broadcast_status")
    made = await create_broadcast(api, actor, body, url, idempotency_key)
    if made.replayed:
        response.status_code = 200
    return made


@router.get(
    "/broadcasts/{broadcast_id}", response_model=BroadcastStatusOut,
    name="app_broadcast_status", summary="配信の状況 / status",
)
async def status(broadcast_id: IdPath, actor: KeyActor, api: Api) -> BroadcastStatusOut:
    return await status_of(api, actor, broadcast_id)
