"""Registration notices: one page per selected child, code and name on it, a QR that decodes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from pdf_tools import fonts_of, info_of, need, pages_text, qr_codes_of

from engine.people import People
from engine.people.directory import find_organisation
from engine.people.notices import Notice, notices_for, notices_pdf
from engine.platform.errors import InputError

from .conftest import import_csv

ROWS = (
    "sho1,3,1,2,山田 太郎,a@example.jp,\n"
    "sho1,3,1,1,𠮷田 花子,,\n"
    "sho1,3,2,1,鈴木 一郎,,\n"
    "sho1,4,1,1,高橋 四郎,,\n"
)
ADDRESS = "entry-sho1@city.example.jp"


async def codes_by_name(people: People) -> dict[str, str]:
    rows = await people.pool.fetch("SELECT name_sealed, code_sealed FROM accounts")
    return {
        people.sealer.open(r["name_sealed"], "account.name"):
        people.sealer.open(r["code_sealed"], "account.code")
        for r in rows
    }


async def test_the_children_of_a_class_in_number_order_or_of_a_grade_or_school(
    schools: People,
) -> None:
    await import_csv(schools, ROWS)
    await import_csv(schools, "学校,氏名,種別\nsho1,先生,教職員\n")  # staff get no notice
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1, 3, "1")
    assert [n.name for n in notices] == ["𠮷田 花子", "山田 太郎"]
    assert [(n.grade, n.class_name, n.number) for n in notices] == [(3, "1", 1), (3, "1", 2)]
    assert len(await notices_for(schools, schools.pool, sho1)) == 4
    assert len(await notices_for(schools, schools.pool, sho1, 3)) == 3


async def test_one_page_per_child_with_its_name_code_class_and_the_address(
    schools: People, tmp_path: Path
) -> None:
    need("pdftotext", "pdfinfo")
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1, 3, "1")
    codes = await codes_by_name(schools)
    pdf = tmp_path / "notices.pdf"
    pdf.write_bytes(notices_pdf(notices, ADDRESS).pdf)
    pages = await asyncio.to_thread(pages_text, pdf)
    assert len(pages) == 2
    for page, notice in zip(pages, notices, strict=True):
        lines = page.splitlines()
        # Whole lines: the name, the code and the address come out exactly as printed.
        assert f"{notice.name} さんの保護者の方へ" in lines and codes[notice.name] in lines
        assert ADDRESS in lines
        assert "第一小学校" in page and f"3年1組 {notice.number}番" in page
        assert "迷惑メール対策をしている場合は、city.example.jp からの" in lines
        others = [codes[n.name] for n in notices if n != notice]
        assert not any(code in page for code in others)
    info = await asyncio.to_thread(info_of, pdf)
    assert info["Pages"] == "2" and info["Page size"].endswith("(A4)")
    assert info["Title"] == "メール配信 登録のご案内"


async def test_the_japanese_font_is_embedded_as_a_subset(
    schools: People, tmp_path: Path
) -> None:
    """Printed on a PC without Japanese fonts, the page must look the same: the glyphs it uses
    travel in the file, and only those (the whole font is 4.5 MB)."""
    need("pdffonts", "pdftotext")
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1)
    pdf = tmp_path / "notices.pdf"
    pdf.write_bytes(notices_pdf(notices, ADDRESS).pdf)
    fonts = await asyncio.to_thread(fonts_of, pdf)
    # One font, embedded, as a subset (whose name carries a six-letter tag): nothing left for
    # the reader's PC to supply.
    assert len(fonts) == 1 and re.fullmatch(r"[A-Z]{6}\+NotoSansJP", fonts[0].name), fonts
    assert fonts[0].embedded and fonts[0].subset, fonts
    assert pdf.stat().st_size < 200_000  # four pages
    text = await asyncio.to_thread(pages_text, pdf)
    assert len(text) == 4
    assert all(n.name in page and n.code in page for n, page in zip(notices, text, strict=True))


async def test_unknown_class_or_nobody_to_print_is_a_clear_error(schools: People) -> None:
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    with pytest.raises(InputError, match="「9」組はありません"):
        await notices_for(schools, schools.pool, sho1, 3, "9")
    with pytest.raises(InputError, match="対象の児童生徒がいません"):
        notices_pdf([], ADDRESS)
    with pytest.raises(InputError):
        notices_pdf(await notices_for(schools, schools.pool, sho1), "not an address")


async def test_the_qr_code_on_every_page_reads_as_mailto_the_address(
    schools: People, tmp_path: Path
) -> None:
    need("pdftoppm", "zbarimg")
    await import_csv(schools, ROWS)
    sho1 = await find_organisation(schools.pool, "sho1")
    notices = await notices_for(schools, schools.pool, sho1, 3, "1")
    pdf = tmp_path / "notices.pdf"
    pdf.write_bytes(notices_pdf(notices, ADDRESS).pdf)
    # At 100 dpi, coarser than any printer, a module is under 5 pixels wide.
    assert await asyncio.to_thread(qr_codes_of, pdf, 100) == [[f"mailto:{ADDRESS}"]] * 2


def test_characters_the_font_lacks_are_named_for_the_operator() -> None:
    # 𠮷 (U+20BB7) is in the font; a private-use gaiji (U+E000) and an emoji are not.
    notices = [
        Notice("さくら小学校", 3, "1", 1, "𠮷田 花子", "ABCD-EFGH"),
        Notice("さくら小学校", 3, "1", 2, "山\ue000 太郎", "ABCD-EFGJ"),
        Notice("さくら小学校", 3, "2", 7, "鈴木 🌸🌸", "ABCD-EFGK"),
    ]
    made = notices_pdf(notices, ADDRESS)
    assert made.pdf.startswith(b"%PDF-")
    assert made.unprintable == [("3年1組 2番", "\ue000"), ("3年2組 7番", "🌸")]
