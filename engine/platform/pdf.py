"""Print-outs as PDF: A4 documents on fpdf2 whose Japanese font is embedded as a subset.

The font is Noto Sans JP (SIL Open Font License 1.1) from the ``pylopdf-fonts-jp`` package, a
dependency of mamoru, so it comes with the installation and nothing is fetched at run time.
The font travels in every file, so the text prints the same on every PC whatever fonts it has
(a font the reader must supply, such as HeiseiKakuGo-W5, prints as empty boxes where it is
missing). fpdf2 embeds only the glyphs the document uses: the whole font is 4.5 MB, a one-page
notice about 35 KB and each further page about 3 KB.
"""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import PathPaintRule
from pylopdf_fonts_jp import sans_path

FONT = "NotoSansJP"


def a4_document(title: str) -> FPDF:
    """An empty A4 portrait document in points (origin top left), the Japanese font selected.

    Pages are added by the caller; nothing breaks pages automatically, so text is placed where
    it is asked to go.
    """
    pdf = FPDF(orientation="portrait", unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font(FONT, fname=sans_path())
    pdf.set_font(FONT, size=11)
    pdf.set_title(title)
    pdf.set_lang("ja")
    pdf.set_creator("mamoru")
    return pdf


def centred(pdf: FPDF, baseline: float, text: str) -> None:
    """Text centred across the page, its baseline at ``baseline``, in the current font."""
    pdf.text((pdf.w - pdf.get_string_width(text)) / 2, baseline, text)


def filled_rectangles(pdf: FPDF, rectangles: list[tuple[float, float, float, float]]) -> None:
    """Black rectangles (x, y, width, height) drawn as one filled path.

    One path rather than one rectangle each: where rectangles touch, a viewer fills the union
    and shows no hairline seams between them.
    """
    with pdf.new_path(paint_rule=PathPaintRule.FILL_NONZERO) as path:
        path.style.fill_color = "#000000"
        for x, y, w, h in rectangles:
            path.rectangle(x, y, w, h)


def lacking(pdf: FPDF, text: str) -> str:
    """The characters of ``text`` the document's current font has no glyph for, each once, in
    order (spaces aside). fpdf2 leaves them out of the page (the old writer printed boxes), so
    callers tell the operator, who can write them in by hand."""
    cmap: dict[int, str] = getattr(pdf.current_font, "cmap", {})
    seen: list[str] = []
    for char in text:
        if not char.isspace() and ord(char) not in cmap and char not in seen:
            seen.append(char)
    return "".join(seen)


def finish(pdf: FPDF) -> bytes:
    """The PDF file of the document."""
    return bytes(pdf.output())
