"""The one CSV writer and reader: BOM out, UTF-8 or CP932 in, bad lines named; Japan time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.platform.clock import jst_text
from engine.platform.csv_io import csv_bytes, csv_cell, csv_text, decode_text
from engine.platform.errors import InputError


def test_written_csv_starts_with_a_bom_and_quotes_formulas() -> None:
    data = csv_bytes(["宛先", "メモ"], [["a@example.jp", csv_cell("=HYPERLINK()")]])
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == "宛先,メモ\r\na@example.jp,'=HYPERLINK()\r\n"
    assert csv_text(["x"], []) == "\ufeffx\r\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_csv_input_is_read_in_utf8_with_or_without_bom_and_in_cp932(encoding: str) -> None:
    text = "address,note\r\na@docomo.ne.jp,保護者の依頼\r\n"
    assert decode_text(text.encode(encoding), "list.csv") == (
        "address,note\na@docomo.ne.jp,保護者の依頼\n"
    )


def test_a_line_readable_in_neither_encoding_is_named() -> None:
    data = "a,保護者\n".encode("cp932") + "b,保護者\n".encode("cp932") + b"c,\x81\n"
    with pytest.raises(InputError, match="list.csv: 3 行目") as exc:
        decode_text(data, "list.csv")
    assert "cp932" in str(exc.value)


def test_times_for_people_are_japan_time() -> None:
    moment = datetime(2026, 11, 23, 0, 5, 7, tzinfo=UTC)
    assert jst_text(moment) == "2026-11-23 09:05:07"
    assert jst_text(moment, seconds=False) == "2026-11-23 09:05"
    assert jst_text(None) == ""
