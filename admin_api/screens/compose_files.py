"""The send form of the confirmation step, with the files to send as links.

The files are chosen on the confirmation and posted with the send itself
(``multipart/form-data``), so they are checked (count, size, kind by content:
``engine.staff.attachments.check_uploads``) and stored in the broadcast's own transaction,
exactly as ``POST /api/staff/broadcasts/with-files`` does: nothing is kept between the steps.
The body is bounded as it arrives and every file stays in memory, never in a temporary file,
because its plain content may identify a family.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from admin_api.screens.web import Visit, check_token
from engine.platform.errors import InputError
from engine.staff import attachments

# The form's text fields beside the files (a body of 100,000 characters, hidden fields).
_FIELDS = 1024 * 1024


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise attachments.TooLarge(
                f"送信されたデータが大きすぎます ({limit:,} バイトまで) "
                f"(the request is larger than {limit} bytes)"
            )
        yield chunk


async def read_send_form(v: Visit) -> FormData:
    """The posted send form, its CSRF token checked; a multipart one read within the
    attachment limits (TooLarge, an InputError, beyond them)."""
    request = v.request
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await v.form()
    limit = v.api.attachments.max_total + 2 * _FIELDS
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise attachments.TooLarge(
            f"添付ファイルが大きすぎます (合計 {v.api.attachments.max_total:,} バイトまで) "
            "(the files are too large)"
        )
    parser = MultiPartParser(request.headers, _limited(request, limit), max_files=100,
                             max_fields=200, max_part_size=_FIELDS)
    parser.spool_max_size = limit  # in memory only
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InputError(f"送信された内容を読み取れません (malformed multipart body: {exc})"
                         ) from None
    check_token(v.csrf, form)
    return form


def uploads_of(form: FormData) -> list[attachments.Upload]:
    """The files chosen (a browser sends one empty part when none is)."""
    out: list[attachments.Upload] = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and (item.filename or item.size):
            item.file.seek(0)
            out.append(attachments.Upload(item.filename or "", item.file.read()))
    return out
