"""Reports as PDF: headings, lines of text and tables flowing over as many A4 pages as needed.

Built on ``engine.platform.pdf`` (fpdf2, Noto Sans JP embedded as a subset), with fpdf2's own
text wrapping, tables and page breaks; a table that continues on the next page repeats its
heading row. Used by the monthly operation report and the disposal record.
"""

from __future__ import annotations

from collections.abc import Sequence

from fpdf.enums import WrapMode, XPos, YPos
from fpdf.fonts import FontFace

from engine.platform.pdf import FONT, a4_document, finish

MARGIN = 40.0
_HEADINGS = FontFace(emphasis="", fill_color=(225, 230, 240))


class FlowDocument:
    """An A4 document written top to bottom; pages are added as the text needs them."""

    def __init__(self, title: str) -> None:
        self.pdf = a4_document(title)
        self.pdf.set_margins(MARGIN, MARGIN, MARGIN)
        self.pdf.set_auto_page_break(True, margin=MARGIN)
        self.pdf.add_page()
        self.title(title)

    @property
    def width(self) -> float:
        return float(self.pdf.epw)

    def _write(self, text: str, size: float, gap_before: float = 0.0) -> None:
        self.pdf.set_font(FONT, size=size)
        if gap_before:
            self.pdf.ln(gap_before)
        # Japanese has no spaces between words: lines break between any two characters.
        self.pdf.multi_cell(0, size * 1.45, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                            wrapmode=WrapMode.CHAR)

    def title(self, text: str) -> None:
        self._write(text, 17)
        self.pdf.ln(4)

    def heading(self, text: str) -> None:
        self._write(text, 13, gap_before=10)
        self.pdf.ln(2)

    def line(self, text: str, size: float = 10) -> None:
        self._write(text, size)

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]],
        widths: Sequence[float] | None = None, size: float = 8.5,
    ) -> None:
        """A table whose columns share the page width in the proportions ``widths``; cells
        wrap; a table that runs over a page break repeats its heading row."""
        self.pdf.set_font(FONT, size=size)
        with self.pdf.table(
            col_widths=tuple(widths) if widths else None, width=self.width,
            headings_style=_HEADINGS, line_height=size * 1.4, text_align="LEFT",
            first_row_as_headings=True, repeat_headings=1, wrapmode=WrapMode.CHAR,
        ) as table:
            for cells in (header, *rows):
                row = table.row()
                for cell in cells:
                    row.cell("" if cell is None else str(cell))
        self.pdf.ln(4)

    def output(self) -> bytes:
        return finish(self.pdf)
