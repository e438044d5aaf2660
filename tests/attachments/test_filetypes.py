"""Kinds of file told by their first bytes, names that must match them, safe download names."""

from __future__ import annotations

import re

import pytest
from support import make_settings

from admin_api.pages.files import content_disposition
from engine.platform.config import AttachmentSettings
from engine.platform.errors import ConfigError, InputError
from engine.staff.attachments import TooLarge, Upload, check_uploads, network_of
from engine.staff.filetypes import BadFileName, ForbiddenFile, clean_name, recognise

from .conftest import EXE, PDF, PNG, office

ALL = ["pdf", "jpeg", "png", "text", "docx", "xlsx"]
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(50)


@pytest.mark.parametrize(("name", "data", "media_type"), [
    ("a.pdf", PDF, "application/pdf"),
    ("写真.JPG", JPEG, "image/jpeg"),
    ("写真.jpeg", JPEG, "image/jpeg"),
    ("図.png", PNG, "image/png"),
    ("メモ.txt", "持ち物\r\n".encode(), "text/plain; charset=UTF-8"),
    ("メモ.txt", "\ufeff持ち物".encode(), "text/plain; charset=UTF-8"),
    ("名簿.csv", "氏名,組\n山田,1\n".encode("cp932"), "text/csv; charset=Shift_JIS"),
    ("文書.docx", office("docx"),
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("表.xlsx", office("xlsx"),
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
])
def test_known_kinds_are_recognised_by_content(name: str, data: bytes, media_type: str) -> None:
    assert recognise(name, data, ALL).media_type == media_type


@pytest.mark.parametrize(("name", "data", "words"), [
    ("お知らせ.pdf", EXE, "中身は PDF ではありません"),
    ("tool.exe", EXE, "送れない種類"),
    ("a.txt", b"abc\x00def", "中身は テキスト ではありません"),
    ("a.png", PDF, "名前と中身 (PDF) が合いません"),
    ("noext", PDF, "名前と中身"),
    ("a.docx", office("xlsx"), "名前と中身"),
    ("a.docx", b"PK\x03\x04 broken zip", "中身は Word 文書 ではありません"),
    ("a.xlsx", office("docx", macro=True), "マクロ"),
    ("a.html", b"<html><script>alert(1)</script>", "名前と中身"),
])
def test_forbidden_content_or_a_name_that_lies_is_refused(
    name: str, data: bytes, words: str
) -> None:
    with pytest.raises(ForbiddenFile, match=re.escape(words)):
        recognise(name, data, ALL)


def test_a_kind_switched_off_in_the_configuration_is_refused() -> None:
    with pytest.raises(ForbiddenFile, match=r"送れるのは PDF \(\.pdf\) です"):
        recognise("写真.jpg", JPEG, ["pdf"])


def test_names_are_cleaned_or_refused() -> None:
    assert clean_name("  C:\\Users\\先生\\学年だより.pdf ") == "学年だより.pdf"
    assert clean_name("ﾃｽﾄ.pdf") == "ﾃｽﾄ.pdf"
    assert clean_name("が.pdf".replace("が", "か\u3099")) == "が.pdf"  # NFC
    for bad in ("", ".pdf", "a\x07.pdf", "a\u202e.pdf", "a:b.pdf", "x" * 121):
        with pytest.raises(BadFileName):
            clean_name(bad)


def test_limits_count_each_file_and_all_together() -> None:
    s = AttachmentSettings(max_size=100, max_total=150, max_files=2)
    assert len(check_uploads(s, [Upload("a.pdf", PDF[:90]), Upload("b.pdf", PDF[:50])])) == 2
    with pytest.raises(TooLarge, match="3 個あります"):
        check_uploads(s, [Upload("a.pdf", PDF[:10])] * 3)
    with pytest.raises(TooLarge, match="大きすぎます"):
        check_uploads(s, [Upload("a.pdf", PDF + bytes(100))])
    with pytest.raises(TooLarge, match="合わせて"):
        check_uploads(s, [Upload("a.pdf", PDF[:90]), Upload("b.pdf", PDF[:90])])
    with pytest.raises(InputError, match="空のファイル"):
        check_uploads(s, [Upload("a.pdf", b"")])


def test_the_configuration_refuses_unknown_kinds_and_short_keeping() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'exe'"):
        from engine.platform.config import load_settings

        load_settings(None, environ={"MAMORU_ATTACHMENTS_TYPES": "pdf,exe"})
    with pytest.raises(ConfigError, match="keep_days"):
        from engine.platform.config import load_settings

        load_settings(None, environ={"MAMORU_ATTACHMENTS_KEEP_DAYS": "7"})
    assert make_settings("postgresql:///x").attachments.link_days == 30


def test_download_names_are_ascii_headers_with_the_exact_name_in_rfc5987() -> None:
    assert content_disposition("学年だより.pdf") == (
        "attachment; filename=\"file.pdf\"; "
        "filename*=UTF-8''%E5%AD%A6%E5%B9%B4%E3%81%A0%E3%82%88%E3%82%8A.pdf"
    )
    assert content_disposition("class 3-1 (list).xlsx").startswith(
        'attachment; filename="class 3-1 (list).xlsx"; filename*=UTF-8\'\'class%203-1%20'
    )
    # Quotes, semicolons and percent signs cannot break out of the fallback.
    assert 'filename="a_b_c_.txt"' in content_disposition('a"b;c%.txt')


def test_the_download_log_keeps_a_network_not_an_address() -> None:
    assert network_of("203.0.113.45") == "203.0.113.0/24"
    assert network_of("2001:db8:1234:5678::9") == "2001:db8:1234::/48"
    assert network_of("::ffff:198.51.100.7") == "198.51.100.0/24"
    assert network_of("testclient") == "unknown"
