"""Registration notices: one page per selected child, code and name on it, a QR that decodes."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from engine.people import People
from engine.people.directory import find_organisation
from engine.people.notices import notices_for, notices_pdf
from engine.platform.errors import InputError

from .conftest import import_csv

ROWS = (
    "sho1,3,1,2,山田 太郎,a@example.jp,\n"
    "sho1,3,1,1,𠮷田 花子,,\n"
    "sho1,3,2,1,鈴木 一郎,,\n"
    "sho1,4,1,1,高橋 四郎,,\n"
)
ADDRESS = "entry-sho1@city.example.jp"


def pages_of(pdf: bytes) -> list[str]:
    """The decompressed content stream of every page, checking the cross-reference table."""
    xref = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", pdf).group(1))  # type: ignore[union-attr]
    table = pdf[xref:].split(b"trailer")[0].split(b"\n")[3:-1]
    for number, entry in enumerate(table, start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(f"{number} 0 obj\n".encode()), number
    streams = re.findall(rb"stream\n(.*?)\nendstream", pdf, re.S)
    return [zlib.decompress(s).decode("ascii") for s in streams]


def hex_of(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


async def codes_by_name(people: People) -> dict[str, str]:
    rows = await people.pool.fetch("SELECT name_sealed, code_sealed FROM accounts")
    return {
        people.sealer.open(r["name_sealed"], "account.name"):
        people.sealer.open(r["code_sealed"], "account.code")
        for r in rows
    }


async def test_one_page_per_child_of_the_class_in_number_order(schools: People) -> None:
    await import_csv(schools, ROWS)
    await import_csv(schools, "学校,氏名,種別\nsho1,先生,教職員\n")  # staff get no notice
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1, 3, "1")
    assert [n.name for n in notices] == ["𠮷田 花子", "山田 太郎"]
    codes = await codes_by_name(schools)
    pages = pages_of(notices_pdf(notices, ADDRESS))
    assert len(pages) == 2
    for page, notice in zip(pages, notices, strict=True):
        assert hex_of(notice.name) in page and hex_of(codes[notice.name]) in page
        assert hex_of(ADDRESS) in page and hex_of("3年1組") in page
    assert len(await notices_for(schools, schools.pool, sho1)) == 4
    assert len(await notices_for(schools, schools.pool, sho1, 3)) == 3


async def test_unknown_class_or_nobody_to_print_is_a_clear_error(schools: People) -> None:
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    with pytest.raises(InputError, match="「9」組はありません"):
        await notices_for(schools, schools.pool, sho1, 3, "9")
    with pytest.raises(InputError, match="対象の児童生徒がいません"):
        notices_pdf([], ADDRESS)
    with pytest.raises(InputError):
        notices_pdf(await notices_for(schools, schools.pool, sho1), "not an address")


@pytest.mark.skipif(
    not (shutil.which("pdftotext") and shutil.which("pdftoppm") and shutil.which("zbarimg")),
    reason="needs the Debian packages poppler-utils and zbar-tools",
)
async def test_a_pdf_reader_finds_the_text_and_a_phone_finds_the_mailto_qr(
    schools: People, tmp_path: Path
) -> None:
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1, 4)
    pdf = tmp_path / "notices.pdf"
    pdf.write_bytes(notices_pdf(notices, ADDRESS))
    text, decoded = await asyncio.to_thread(read_back, pdf)
    code = (await codes_by_name(schools))["高橋 四郎"]
    assert "高橋 四郎 さんの保護者の方へ" in text and code in text and ADDRESS in text
    assert decoded == f"mailto:{ADDRESS}"


def read_back(pdf: Path) -> tuple[str, str]:
    """The PDF's text as a reader extracts it, and its QR code as a scanner reads it."""
    text = subprocess.run(
        ["pdftotext", pdf, "-"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", pdf, pdf.with_suffix("")], timeout=30, check=True
    )
    [image] = list(pdf.parent.glob("notices*.png"))
    decoded = subprocess.run(
        ["zbarimg", "-q", "--raw", image], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return text, decoded
