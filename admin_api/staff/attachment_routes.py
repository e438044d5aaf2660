"""Attachments for staff and applications: a broadcast created with its files in one request,
the files of a broadcast with their download counts, and taking a file back.

``POST /api/staff/broadcasts/with-files`` is ``multipart/form-data`` with a ``broadcast`` field
(the JSON body of ``POST /api/staff/broadcasts``) and one ``files`` part per file. The files
are checked first (count, size, kind by content) and stored sealed in the broadcast's own
transaction, so a broadcast never goes out with half its files. The body is read as it
arrives and refused (413) as soon as it passes the limit; files are kept in memory, never in a
temporary file, because their plain content may identify a family.
``POST /api/apps/broadcasts/with-files`` is the same for applications, with the
``Idempotency-Key`` of ``POST /api/apps/broadcasts`` standing for the files too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from admin_api.staff.broadcast_routes import request_of
from admin_api.staff.deps import Actor, Api, KeyActor, StaffApi, audited, public_url_for
from admin_api.staff.errors import ERROR_RESPONSES, ErrorBody, StaffRoute, error_response
from admin_api.staff.schemas import (
    BroadcastIn,
    BroadcastWithFilesOut,
    FileOut,
    IdPath,
)
from engine.platform.config import AttachmentSettings
from engine.platform.errors import InputError
from engine.staff import attachments, audit, sending
from engine.staff.filetypes import ForbiddenFile
from engine.staff.models import Principal

router = APIRouter(
    prefix="/api/staff/broadcasts", tags=["attachments"], route_class=StaffRoute,
    responses=ERROR_RESPONSES,
)
app_router = APIRouter(
    prefix="/api/apps/broadcasts", tags=["applications"], route_class=StaffRoute,
    responses=ERROR_RESPONSES,
)

# Room for the broadcast's JSON field (a body of 100,000 characters, perhaps \u-escaped) and
# the multipart framing beside the files themselves.
_FRAMING = 1024 * 1024
# The multipart form's fields: anything else is refused, never ignored.
_FORM_FIELDS = frozenset({"broadcast", "files"})
_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "too many or too large files / ファイルが多すぎる・"
          "大きすぎる (nothing stored)"},
    415: {"model": ErrorBody, "description": "a kind of file not accepted (by content) / "
          "送れない種類のファイル (nothing stored)"},
}
_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["broadcast", "files"],
                    "properties": {
                        "broadcast": {
                            "type": "string",
                            "description": "the JSON body of POST /api/staff/broadcasts",
                        },
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "PDF, JPEG, PNG, text, docx, xlsx ([attachments] "
                                           "types), each with its file name",
                        },
                    },
                },
                "encoding": {"broadcast": {"contentType": "application/json"}},
            }
        },
    }
}


class _Refused(Exception):
    """Carries a 413 or 415 from the body reader to the route."""

    def __init__(self, status: int, exc: InputError) -> None:
        super().__init__(str(exc))
        self.status = status
        self.error = exc


def file_out(f: attachments.FileInfo) -> FileOut:
    return FileOut(**f.__dict__)


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise attachments.TooLarge(_too_large(limit))
        yield chunk


def _too_large(limit: int) -> str:
    return (
        f"送信されたデータが大きすぎます ({limit:,} バイトまで) "
        f"(the request is larger than {limit} bytes)"
    )


async def _read_form(
    request: Request, settings: AttachmentSettings
) -> tuple[BroadcastIn, list[attachments.Upload]]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InputError(
            "multipart/form-data で送ってください (send multipart/form-data: a broadcast field "
            "and files)"
        )
    limit = settings.max_total + _FRAMING
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise attachments.TooLarge(_too_large(limit))
    parser = MultiPartParser(
        request.headers, _limited(request, limit), max_files=100, max_fields=10,
        max_part_size=_FRAMING,
    )
    # Every file stays in memory (the whole body is bounded above): no plain copy on disk.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InputError(f"multipart として読めません (malformed multipart body: {exc})") from None
    try:
        unknown = sorted({k for k in form.keys() if k not in _FORM_FIELDS})
        if unknown:
            raise InputError(
                f"入力が正しくありません (invalid input): {unknown[0]}: 知らない項目です "
                "(unknown field; send only broadcast and files)"
            )
        uploads = [
            attachments.Upload(item.filename or "", await item.read())
            for item in form.getlist("files") if isinstance(item, UploadFile)
        ]
        text = form.get("broadcast")
    finally:
        await form.close()
    if not isinstance(text, str):
        raise InputError("broadcast の欄がありません (the broadcast field is missing)")
    if not uploads:
        raise InputError(
            "ファイルがありません。files の欄で送ってください (no files: send them as files; "
            "without files use POST /api/staff/broadcasts)"
        )
    try:
        body = BroadcastIn.model_validate_json(text)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("broadcast", *e.get("loc", ()))} for e in exc.errors()]
        ) from None
    return body, uploads


async def _checked(
    api: StaffApi, actor: Principal, request: Request
) -> tuple[BroadcastIn, list[attachments.CheckedFile]]:
    """The form, read and checked; a refusal is in the audit log, nothing is stored."""
    try:
        body, uploads = await _read_form(request, api.attachments)
        return body, attachments.check_uploads(api.attachments, uploads)
    except InputError as exc:
        await api.staff.log(actor, "attachment.upload", "", audit.Result.FAILED, str(exc)[:300])
        if isinstance(exc, attachments.TooLarge | ForbiddenFile):
            raise _Refused(413 if isinstance(exc, attachments.TooLarge) else 415, exc) from None
        raise


async def _create(
    api: StaffApi, actor: Principal, request: Request, status_route: str,
    idempotency_key: str | None = None,
) -> JSONResponse:
    try:
        body, files = await _checked(api, actor, request)
    except _Refused as r:
        return error_response(r.status, "too_large" if r.status == 413 else "unsupported_type",
                              str(r.error))
    req = replace(request_of(body, actor), files_digest=attachments.files_digest(files))
    now = api.staff.now()
    store = attachments.storing(
        api.people.sealer, files, req.send_at or now, api.attachments, now
    )
    made = await audited(
        api, actor, "broadcast.create", "",
        sending.create(api.staff, api.people, api.queue, actor, req, api.max_age,
                       idempotency_key, also=store),
        object_of=lambda c: f"broadcast {c.broadcast_id}",
        detail=f"audience={body.audience.model_dump_json(exclude_defaults=True)}"[:300],
    )
    if not made.replayed:
        # Names can identify a family: the log keeps kinds and sizes only.
        await api.staff.log(
            actor, "attachment.upload", f"broadcast {made.broadcast_id}", audit.Result.OK,
            json.dumps({"files": len(files), "bytes": sum(len(f.data) for f in files),
                        "types": sorted({f.media_type.split(";")[0] for f in files})}),
        )
    stored = await attachments.files_of(
        api.staff.pool, api.people.sealer, actor, made.broadcast_id, now
    )
    url = public_url_for(request, api, status_route, broadcast_id=made.broadcast_id)
    out = BroadcastWithFilesOut(
        broadcast_id=made.broadcast_id, recipients=made.recipients, replayed=made.replayed,
        summary_ja=made.summary_ja, status_url=url, files=[file_out(f) for f in stored],
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if made.replayed else 201)


@router.post(
    "/with-files", response_model=BroadcastWithFilesOut, status_code=201,
    responses=_REFUSALS, openapi_extra=_MULTIPART_BODY,
    summary="ファイル付きの配信 / send with files",
)
async def create_with_files(actor: Actor, api: Api, request: Request) -> Any:
    """The broadcast and its files in one transaction: every file is checked first (count,
    size, kind by content); a refusal (413, 415, 422) stores nothing. Each recipient's mail
    links to their personal page, which lists the files."""
    return await _create(api, actor, request, "broadcast_status")


@app_router.post(
    "/with-files", response_model=BroadcastWithFilesOut, status_code=201,
    responses={
        **_REFUSALS,
        200: {"model": BroadcastWithFilesOut, "description": "a retry: nothing sent again"},
        409: {"model": ErrorBody, "description": "idempotency key reused / 冪等キーの再利用"},
    },
    openapi_extra=_MULTIPART_BODY, summary="アプリからのファイル付き配信 / submit with files",
)
async def submit_with_files(
    actor: KeyActor,
    api: Api,
    request: Request,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
) -> Any:
    """As ``POST /api/apps/broadcasts`` with files: a retry with the same ``Idempotency-Key``
    and the same content and files returns the first broadcast (200) and stores nothing."""
    return await _create(api, actor, request, "app_broadcast_status", idempotency_key)


@router.get(
    "/{broadcast_id}/files", response_model=list[FileOut],
    summary="配信のファイルとダウンロード数 / files and downloads",
)
async def list_files(broadcast_id: IdPath, actor: Actor, api: Api) -> list[FileOut]:
    """Each file with how often, and by how many recipients, it was downloaded."""
    files = await attachments.files_of(
        api.staff.pool, api.people.sealer, actor, broadcast_id, api.staff.now()
    )
    return [file_out(f) for f in files]


@router.delete(
    "/{broadcast_id}/files/{position}", response_model=FileOut,
    summary="ファイルの取り下げ / withdraw a file",
)
async def withdraw_file(
    broadcast_id: IdPath,
    position: Annotated[int, Path(ge=1, le=100)],
    actor: Actor,
    api: Api,
) -> FileOut:
    """Deletes the file's content at once (a wrong file sent); its link then says the school
    withdrew it. The name and download counts stay until the broadcast's files are pruned."""
    f = await audited(
        api, actor, "attachment.withdraw", f"broadcast {broadcast_id} file {position}",
        attachments.withdraw(
            api.staff.pool, api.people.sealer, actor, broadcast_id, position, api.staff.now()
        ),
    )
    return file_out(f)
