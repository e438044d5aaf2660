"""Reading our PDFs back the way a person's tools do: poppler-utils for text, fonts and images,
zbar-tools for QR codes. A test that needs a missing tool skips, naming the Debian package."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_OF = {
    "pdffonts": "poppler-utils",
    "pdfinfo": "poppler-utils",
    "pdftotext": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "zbarimg": "zbar-tools",
}


def need(*tools: str) -> None:
    """Skip the calling test unless every tool is installed."""
    for name in tools:
        if shutil.which(name) is None:
            pytest.skip(f"needs {PACKAGE_OF[name]} ({name}): apt-get install {PACKAGE_OF[name]}")


def output_of(*args: str | Path) -> str:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=True
    ).stdout


def pages_text(pdf: Path) -> list[str]:
    """Each page's text as a PDF reader extracts it (pdftotext ends every page with a \\f)."""
    *pages, after_last = output_of("pdftotext", "-enc", "UTF-8", pdf, "-").split("\f")
    assert after_last == "", after_last
    return pages


@dataclass(frozen=True)
class Font:
    name: str
    type: str
    embedded: bool
    subset: bool


def fonts_of(pdf: Path) -> list[Font]:
    """The fonts pdffonts lists, one per font object."""
    header, dashes, *rows = output_of("pdffonts", pdf).splitlines()
    assert header.split()[:2] == ["name", "type"] and set(dashes) <= {"-", " "}, header
    fonts = []
    for row in rows:
        # name, type (may hold spaces), encoding, emb, sub, uni, object number, generation
        name, *kind, _encoding, emb, sub, _uni, _number, _generation = row.split()
        fonts.append(Font(name, " ".join(kind), emb == "yes", sub == "yes"))
    return fonts


def info_of(pdf: Path) -> dict[str, str]:
    """pdfinfo's fields: Title, Pages, Page size ..."""
    return {
        key: value.strip()
        for key, value in re.findall(r"^([^:\n]+):(.*)$", output_of("pdfinfo", pdf), re.M)
    }


def qr_codes_of(pdf: Path, dpi: int = 150) -> list[list[str]]:
    """The QR codes a scanner reads on each page, rendered at ``dpi``."""
    prefix = pdf.with_name(pdf.stem + "-page")
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", pdf, prefix], timeout=60, check=True)
    images = sorted(
        pdf.parent.glob(prefix.name + "-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1])
    )
    found = []
    for image in images:
        # zbarimg exits 4 when it finds no code: that is an answer (an empty page), not an error.
        done = subprocess.run(
            ["zbarimg", "-q", "--raw", image], capture_output=True, text=True, timeout=60
        )
        assert done.returncode in (0, 4), done.stderr
        found.append(done.stdout.splitlines())
    return found
