"""Errors of the staff API: one JSON shape, Japanese first with English, the right status.

Routers made with ``StaffRoute`` turn mamoru's errors and FastAPI's validation errors into
``{"error": CODE, "message": TEXT}`` themselves, so the app that mounts them needs no
exception handlers of its own:

    AuthError             401 unauthorized (with WWW-Authenticate: Bearer)
    RightsError           403 forbidden
    NotFoundError         404 not_found
    IdempotencyConflict   409 conflict
    InputError            422 invalid
    malformed JSON        400 malformed
    other MamoruError     503 unavailable (configuration or database)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from engine.platform.errors import InputError, MamoruError
from engine.staff.models import AuthError, NotFoundError, RightsError
from engine.staff.sending import IdempotencyConflict


class ErrorBody(BaseModel):
    """Every error of the staff API."""

    error: str
    message: str


def status_of(exc: MamoruError) -> tuple[int, str]:
    if isinstance(exc, AuthError):
        return 401, "unauthorized"
    if isinstance(exc, RightsError):
        return 403, "forbidden"
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, IdempotencyConflict):
        return 409, "conflict"
    if isinstance(exc, InputError):
        return 422, "invalid"
    return 503, "unavailable"


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        ErrorBody(error=code, message=message).model_dump(), status_code=status, headers=headers
    )


_MALFORMED = "JSON として読めません (malformed JSON body)"


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed", _MALFORMED
    parts = []
    # Unknown fields first: a misspelt name is the likeliest mistake, and must be named.
    for e in sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        if e.get("type") == "extra_forbidden":
            parts.append(f"{where}: 知らない項目です (unknown field)")
        else:
            parts.append(f"{where}: {e.get('msg', '')}")
    return 422, "invalid", "入力が正しくありません (invalid input): " + "; ".join(parts)


class StaffRoute(APIRoute):
    """An APIRoute whose errors come out as ``ErrorBody`` (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return error_response(*_validation_message(exc))
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                # A body FastAPI could not even decode (not UTF-8, a broken form): malformed.
                return error_response(400, "malformed", _MALFORMED)
            except MamoruError as exc:
                return error_response(*status_of(exc), str(exc))
            except (
                asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError
            ):
                # A last guard: the schemas refuse control characters before this.
                return error_response(
                    422, "invalid", "使えない文字が含まれています (characters not allowed)"
                )

        return route


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "malformed JSON / JSON として読めない"),
        (401, "not signed in / ログインしていない"),
        (403, "not within the caller's rights / 権限がない"),
        (404, "not found, or not visible to the caller / 見つからない"),
        (422, "invalid input, nothing changed / 入力の誤り (何も変更しない)"),
        (503, "database or configuration problem / データベースか設定の問題"),
    )
}
