"""Importing an accounts CSV from a screen, with a dry-run preview before anything is stored.

``GET /staff/roster/import`` the form; ``POST`` uploads the file (multipart; UTF-8, CP932 or
UTF-16 as engine/platform/csv_io reads them), checks that every school it names is one the
staff member administers (``roster.may_import``), and runs the import as a dry run
(``import_accounts`` with ``dry_run``: the real run, rolled back), so the preview's counts,
changes (the first 100) and errors with their line numbers are the real run's. Nothing is
stored. The uploaded bytes are kept server-side, in a private directory (0700, files 0600)
under a random id bound to the staff member, for ``KEEP`` seconds; ``POST .../confirm`` runs
the import for real on those same bytes (the checks again, as the database may have changed)
and removes the file. A second host does not see the file: the confirmation must reach the
host that showed the preview (behind a load balancer with sticky sessions, or upload again).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from admin_api.screens.people import require_admin
from admin_api.screens.web import ScreenRoute, Visit, field, visit
from engine.people.csv_import import parse_rows
from engine.people.importing import ImportOptions, ImportReport, import_accounts
from engine.platform.csv_io import ENCODINGS
from engine.platform.errors import InputError
from engine.staff import roster

router = APIRouter(prefix="/staff/roster", route_class=ScreenRoute, include_in_schema=False)

MAX_BYTES = 5 * 1024 * 1024
KEEP = 30 * 60
SHOWN = 100
_ID = re.compile(r"[A-Za-z0-9_-]{24}")
_dir: Path | None = None


def _uploads() -> Path:
    """The private directory of uploads waiting for their confirmation (made once, 0700)."""
    global _dir
    if _dir is None or not _dir.is_dir():
        _dir = Path(tempfile.mkdtemp(prefix="mamoru-uploads-"))
    return _dir


def _expire(folder: Path, now: float) -> None:
    for path in folder.glob("*.json"):
        try:
            if now - path.stat().st_mtime > KEEP:
                path.unlink(missing_ok=True)
                path.with_suffix(".csv").unlink(missing_ok=True)
        except OSError:
            continue


def _keep(data: bytes, staff_id: int, encoding: str, close_missing: bool) -> str:
    folder = _uploads()
    _expire(folder, time.time())
    upload = secrets.token_urlsafe(18)
    for suffix, content in ((".csv", data), (".json", json.dumps(
        {"staff": staff_id, "encoding": encoding, "close_missing": close_missing}
    ).encode())):
        fd = os.open(folder / f"{upload}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    return upload


def _take(upload: str, staff_id: int) -> tuple[bytes, str, bool]:
    """The kept upload of ``staff_id`` (removed), or InputError when it expired or is not
    theirs."""
    gone = InputError("取り込むファイルが見つかりません。時間が経ったため破棄されました: "
                      "もう一度アップロードしてください (upload expired)")
    if not _ID.fullmatch(upload):
        raise gone
    folder = _uploads()
    meta_path, data_path = folder / f"{upload}.json", folder / f"{upload}.csv"
    try:
        if time.time() - meta_path.stat().st_mtime > KEEP:
            raise gone
        meta = json.loads(meta_path.read_bytes())
        if meta.get("staff") != staff_id:
            raise gone
        data = data_path.read_bytes()
    except (OSError, ValueError):
        raise gone from None
    meta_path.unlink(missing_ok=True)
    data_path.unlink(missing_ok=True)
    return data, str(meta["encoding"]), bool(meta["close_missing"])


async def _run(v: Visit, data: bytes, encoding: str, close_missing: bool,
               dry_run: bool) -> ImportReport:
    parsed = parse_rows(data, encoding)
    await roster.may_import(v.api.staff.pool, v.actor, {r.school for r in parsed.rows})
    options = ImportOptions(close_missing=close_missing, dry_run=dry_run)
    return await v.api.staff.audited(
        v.actor, "accounts.import", "dry run" if dry_run else "import",
        import_accounts(v.api.people, parsed, options),
        detail=f"rows={len(parsed.rows)} close_missing={close_missing} (screens)",
    )


@router.get("/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    v = await visit(request)
    require_admin(v)
    return v.page("import.html", title="名簿の取り込み (CSV)", encodings=ENCODINGS)


@router.post("/import", response_class=HTMLResponse)
async def import_preview(request: Request) -> Response:
    v = await visit(request)
    require_admin(v)
    form = await v.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InputError("CSV ファイルを選んでください (no file)")
    data = await upload.read(MAX_BYTES + 1)
    if not data:
        raise InputError("ファイルが空です (empty file)")
    if len(data) > MAX_BYTES:
        raise InputError("ファイルが大きすぎます (5 MB まで) (file too large)")
    encoding = field(form, "encoding", 10) or "auto"
    if encoding not in ENCODINGS:
        raise InputError("文字コードの指定が正しくありません (encoding)")
    close_missing = field(form, "close_missing", 5) == "1"
    report = await _run(v, data, encoding, close_missing, dry_run=True)
    upload_id = _keep(data, v.actor.id or 0, encoding, close_missing)
    return v.page("import_preview.html", title="取り込みの確認 (まだ保存していません)",
                  report=report, shown=report.changes[:SHOWN], upload=upload_id,
                  close_missing=close_missing, name=(upload.filename or "")[:100])


@router.post("/import/confirm", response_class=HTMLResponse)
async def import_confirm(request: Request) -> Response:
    v = await visit(request)
    require_admin(v)
    form = await v.form()
    data, encoding, close_missing = _take(field(form, "upload", 40), v.actor.id or 0)
    report = await _run(v, data, encoding, close_missing, dry_run=False)
    return v.page("import_preview.html", title="取り込みの結果", report=report,
                  shown=report.changes[:SHOWN], upload="", close_missing=close_missing, name="")
