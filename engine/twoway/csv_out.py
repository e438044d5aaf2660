"""CSV for staff downloads: UTF-8 with BOM (Excel opens it as Japanese), formula-safe cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def csv_cell(text: str) -> str:
    """The text made safe for a spreadsheet: a leading = + - @ would run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """The rows as CSV (CRLF line ends), UTF-8 with a byte-order mark."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(header)
    out.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
