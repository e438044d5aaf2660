"""Which files a broadcast may carry: the kind told by the content's first bytes, and the name.

A file is accepted only when its content is one of the known kinds *and* its name ends with an
extension of that kind: an executable renamed ``お知らせ.pdf`` does not start with ``%PDF-`` and
is refused, and a PNG called ``.pdf`` is refused too, so a guardian's phone never opens a file
with another program than its name promises. Pure functions, no I/O.

    kind      recognised by                                          extensions
    pdf       ``%PDF-`` (ISO 32000-1, 7.5.2)                           .pdf
    jpeg      ``FF D8 FF`` (JFIF / Exif SOI marker)                    .jpg .jpeg
    png       the 8-byte PNG signature (RFC 2083, 3.1)                 .png
    text      UTF-8 (BOM allowed) or Shift_JIS (CP932) text without     .txt .csv
              NUL or other control characters than tab, CR, LF, FF
    docx      a ZIP (``PK\\x03\\x04``) holding ``[Content_Types].xml``    .docx
              and ``word/document.xml``, no macros (ECMA-376 Part 2)
    xlsx      the same with ``xl/workbook.xml``                        .xlsx

Office files with macros (``vbaProject.bin``, ``macroEnabled`` content types) are refused.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from engine.platform.errors import InputError


class ForbiddenFile(InputError):
    """A file whose kind (by content) is not accepted, or whose name does not fit it; 415."""


class BadFileName(InputError):
    """A file name that cannot be shown or saved safely; 422."""


@dataclass(frozen=True)
class Kind:
    name: str
    label_ja: str
    extensions: tuple[str, ...]
    media_type: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("pdf", "PDF", (".pdf",), "application/pdf"),
        Kind("jpeg", "JPEG 画像", (".jpg", ".jpeg"), "image/jpeg"),
        Kind("png", "PNG 画像", (".png",), "image/png"),
        Kind("text", "テキスト", (".txt", ".csv"), "text/plain"),
        Kind("docx", "Word 文書", (".docx",),
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        Kind("xlsx", "Excel ブック", (".xlsx",),
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    )
}

_PNG = b"\x89PNG\r\n\x1a\n"
_ZIP = b"PK\x03\x04"
_NAME_FORBIDDEN = set('/\\:*?"<>|')
MAX_NAME = 120
# Control characters a text file has no business holding (tab, LF, FF, CR are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# The content-types part of a real Office file is a few KB; refuse to inflate a large one.
_MAX_CONTENT_TYPES = 256 * 1024


@dataclass(frozen=True)
class Recognised:
    kind: Kind
    # What the download is served as (text with its charset).
    media_type: str


def clean_name(name: str) -> str:
    """The name as it will be stored and shown (NFC, trimmed), or BadFileName."""
    text = unicodedata.normalize("NFC", name).strip()
    # Browsers send a path on some systems: the last part is the name.
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not text or text.startswith("."):
        raise BadFileName("ファイル名がありません (a file needs a name, e.g. お知らせ.pdf)")
    if len(text) > MAX_NAME:
        raise BadFileName(
            f"ファイル名は {MAX_NAME} 文字までです (file names of at most {MAX_NAME} characters)"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text) or (
        _NAME_FORBIDDEN & set(text)
    ):
        raise BadFileName(
            "ファイル名に使えない文字があります (the file name has a character not allowed: "
            "control characters or / \\ : * ? \" < > |)"
        )
    return text


class _Macro(Exception):
    """An Office file with macros inside."""


def recognise(name: str, data: bytes, allowed: list[str]) -> Recognised:
    """The kind of ``data`` if it is an allowed one and ``name`` ends with its extension."""
    try:
        kind = _sniff(data)
    except _Macro:
        raise ForbiddenFile(
            f"「{name}」はマクロを含むため送れません。マクロのない形式で保存し直してください "
            "(Office files with macros are not accepted: save it without macros)"
        ) from None
    accepted = "、".join(
        f"{KINDS[k].label_ja} ({' '.join(KINDS[k].extensions)})" for k in allowed if k in KINDS
    )
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind is None or kind.name not in allowed:
        claimed = next((k for k in KINDS.values() if ext in k.extensions), None)
        if claimed is not None and claimed.name in allowed:
            raise ForbiddenFile(
                f"「{name}」の中身は {claimed.label_ja} ではありません。送れるのは {accepted} です "
                f"(the content of the file is not a {claimed.name} file; accepted: "
                f"{', '.join(allowed)})"
            )
        raise ForbiddenFile(
            f"「{name}」は送れない種類のファイルです。送れるのは {accepted} です "
            f"(this kind of file is not accepted; accepted: {', '.join(allowed)})"
        )
    if ext not in kind.extensions:
        raise ForbiddenFile(
            f"「{name}」の名前と中身 ({kind.label_ja}) が合いません。名前を "
            f"{' か '.join(kind.extensions)} で終わるようにしてください "
            f"(the name does not match the content, a {kind.name} file: name it "
            f"{' or '.join(kind.extensions)})"
        )
    media_type = kind.media_type
    if kind.name == "text":
        charset = "UTF-8" if _utf8(data) is not None else "Shift_JIS"
        media_type = f"{'text/csv' if ext == '.csv' else 'text/plain'}; charset={charset}"
    return Recognised(kind, media_type)


def _sniff(data: bytes) -> Kind | None:
    if data.startswith(b"%PDF-"):
        return KINDS["pdf"]
    if data.startswith(b"\xff\xd8\xff"):
        return KINDS["jpeg"]
    if data.startswith(_PNG):
        return KINDS["png"]
    if data.startswith(_ZIP):
        return _office(data)
    if _is_text(data):
        return KINDS["text"]
    return None


def _office(data: bytes) -> Kind | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = {i.filename: i for i in z.infolist()}
            types = names.get("[Content_Types].xml")
            if types is None or types.file_size > _MAX_CONTENT_TYPES:
                return None
            if any(n.lower().endswith("vbaproject.bin") for n in names) or (
                b"macroenabled" in z.read(types).lower()
            ):
                raise _Macro
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError):
        return None
    if "word/document.xml" in names:
        return KINDS["docx"]
    if "xl/workbook.xml" in names:
        return KINDS["xlsx"]
    return None


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _is_text(data: bytes) -> bool:
    text = _utf8(data)
    if text is None:
        try:
            text = data.decode("cp932")
        except UnicodeDecodeError:
            return False
    return bool(text) and _CONTROL.search(text) is None
