"""CSV in and out for people: every file written is UTF-8 with BOM, every file read may be
UTF-8 (with or without BOM), CP932 or UTF-16 with a BOM.

Excel on Japanese Windows opens a UTF-8 CSV as Japanese only when it starts with a byte-order
mark, and saves CSV as CP932 (Shift_JIS with Microsoft's extensions) unless told otherwise.
So the writers here always put the BOM first and end lines with CRLF, every text cell that
Excel would run as a formula (one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return: a registered address ``=1+1@...`` too) is prefixed with a single quote, whoever wrote
the row, and the readers take either encoding and drop that quote again (``plain_cell``), so
an exported file imports as it was: ``decode_lines``
picks one (a BOM means UTF-8; otherwise the one that reads more non-ASCII lines) and decodes
line by line, so that one mis-encoded line is reported as that line. Excel's 「Unicode テキスト」
is UTF-16 with a BOM and tabs between the cells: such a file is decoded whole, and
``delimiter_of`` tells the readers to split its lines at tabs. A file in none of these
encodings (UTF-16 without a BOM, UTF-32, a spreadsheet's binary file) is refused with one
Japanese line, never read as garbage.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from engine.platform.errors import InputError

BOM = "\ufeff"
ENCODINGS = ("auto", "utf-8", "cp932", "utf-16")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UNKNOWN_ENCODING = (
    "文字コードが分かりません: UTF-8・Shift_JIS (CP932)・UTF-16 (BOM 付き) のどれかで保存して"
    "ください (the file is not UTF-8, CP932 or UTF-16 with a byte-order mark)"
)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """The text made safe for a spreadsheet: a leading = + - @ (or a tab, a carriage return)
    would run as a formula. Applying it twice changes nothing more."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def plain_cell(text: str) -> str:
    """A cell read back: the quote ``csv_cell`` put before a formula character removed."""
    return text[1:] if text[:1] == "'" and text[1:2] in _FORMULA_STARTS else text


def _safe(row: Sequence[object]) -> list[object]:
    return [csv_cell(c) if isinstance(c, str) else c for c in row]


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV for Excel: a BOM first, CRLF line ends, every text cell through
    ``csv_cell`` (numbers, including negative ones, stay numbers)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(_safe(header))
    out.writerows(_safe(row) for row in rows)
    return BOM + buf.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """``csv_text`` encoded as UTF-8 (the BOM included), for downloads and files."""
    return csv_text(header, rows).encode("utf-8")


def decode_lines(data: bytes, encoding: str = "auto") -> tuple[str, list[tuple[int, str | None]]]:
    """The encoding used and every line as (number, text), text None when it cannot be read."""
    if encoding not in ENCODINGS:
        raise InputError(f"--encoding は {', '.join(ENCODINGS)} のどれかです (unknown encoding)")
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):  # UTF-32
        raise InputError(UNKNOWN_ENCODING)
    if data.startswith(_UTF16_BOMS) or encoding == "utf-16":
        return "utf-16", _utf16_lines(data)
    if b"\x00" in data:
        # UTF-16 without its BOM, UTF-32 or a binary file: no line of it is text we can trust.
        raise InputError(UNKNOWN_ENCODING)
    raw_lines = data.split(b"\n")  # safe in CP932 too: 0x0A is never a trail byte
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        raw_lines[0] = raw_lines[0][3:]
    if encoding == "auto":
        encoding = "utf-8" if bom else _guess(raw_lines)
    out: list[tuple[int, str | None]] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            out.append((number, raw.rstrip(b"\r").decode(encoding)))
        except UnicodeDecodeError:
            out.append((number, None))
    return encoding, out


def _utf16_lines(data: bytes) -> list[tuple[int, str | None]]:
    """Every line of a UTF-16 file (the BOM says which byte order); one bad sequence refuses
    the file, since after it the byte order of the rest cannot be trusted."""
    try:
        text = data.decode("utf-16")
    except UnicodeDecodeError:
        raise InputError(UNKNOWN_ENCODING) from None
    if "\x00" in text:
        raise InputError(UNKNOWN_ENCODING)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(n, line.rstrip("\r")) for n, line in enumerate(lines, start=1)]


def delimiter_of(header: str) -> str:
    """The cell separator of a file whose header line is ``header``: a tab for Excel's
    「Unicode テキスト」 (tabs and no comma), else a comma."""
    return "\t" if "\t" in header and "," not in header else ","


def decode_text(data: bytes, name: str, encoding: str = "auto") -> str:
    """The whole file as text (lines joined with ``\\n``); ``InputError`` naming every line
    that cannot be read in the encoding found."""
    used, lines = decode_lines(data, encoding)
    bad = [n for n, text in lines if text is None]
    if bad:
        shown = ", ".join(str(n) for n in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise InputError(
            f"{name}: {shown} 行目の文字コードが {used} として読めません (lines not readable as "
            f"{used}; save the file as UTF-8, Shift_JIS/CP932 or UTF-16)"
        )
    return "".join(f"{text}\n" for _, text in lines)


def _guess(lines: list[bytes]) -> str:
    """UTF-8 unless more non-ASCII lines read as CP932 than as UTF-8."""
    utf8 = cp932 = 0
    for raw in lines:
        if raw.isascii():
            continue
        for name in ("utf-8", "cp932"):
            try:
                raw.decode(name)
            except UnicodeDecodeError:
                continue
            if name == "utf-8":
                utf8 += 1
            else:
                cp932 += 1
    return "cp932" if cp932 > utf8 else "utf-8"
