"""A small PDF writer for print-outs: A4 pages of Japanese text and filled rectangles.

None of mamoru's dependencies writes PDF with text, and print-outs need little: text in one
font and black boxes (QR modules, rules). The text uses the Japanese font every PDF reader
provides without embedding (``HeiseiKakuGo-W5`` with the ``UniJIS-UTF16-H`` encoding, Adobe-
Japan1; PDF 1.7 section 9.7.5.2), so files stay a few kilobytes per page; ASCII is drawn
half-width. Content streams are Flate-compressed (zlib).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

A4 = (595.28, 841.89)
_FONT = "HeiseiKakuGo-W5"


def text_width(text: str, size: float) -> float:
    """Width in points: ASCII half an em, everything else a full em."""
    return sum(0.5 if ch.isascii() else 1.0 for ch in text) * size


@dataclass
class Page:
    """Drawing operations of one page; coordinates in points from the bottom left."""

    ops: list[str] = field(default_factory=list)

    def text(self, x: float, y: float, size: float, text: str) -> None:
        encoded = text.encode("utf-16-be").hex().upper()
        self.ops.append(f"BT /F1 {size:.2f} Tf {x:.2f} {y:.2f} Td <{encoded}> Tj ET")

    def centred(self, y: float, size: float, text: str) -> None:
        self.text((A4[0] - text_width(text, size)) / 2, y, size, text)

    def rect(self, x: float, y: float, w: float, h: float) -> None:
        self.ops.append(f"{x:.2f} {y:.2f} {w:.2f} {h:.2f} re f")

    def frame(self, x: float, y: float, w: float, h: float, width: float = 1.0) -> None:
        self.ops.append(f"{width:.2f} w {x:.2f} {y:.2f} {w:.2f} {h:.2f} re S")


def render(pages: list[Page], title: str) -> bytes:
    """The PDF file of the pages."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in last
    info = add(b"<< /Title <" + _utf16_bom(title) + b"> /Producer (mamoru) >>")
    descriptor = add(
        f"<< /Type /FontDescriptor /FontName /{_FONT} /Flags 4 "
        f"/FontBBox [-92 -250 1010 922] /ItalicAngle 0 /Ascent 752 /Descent -221 "
        f"/CapHeight 737 /StemV 114 >>".encode()
    )
    cid_font = add(
        f"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /{_FONT} "
        f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 5 >> "
        f"/FontDescriptor {descriptor} 0 R /DW 1000 /W [1 95 500] >>".encode()
    )
    font = add(
        f"<< /Type /Font /Subtype /Type0 /BaseFont /{_FONT}-UniJIS-UTF16-H "
        f"/Encoding /UniJIS-UTF16-H /DescendantFonts [{cid_font} 0 R] >>".encode()
    )
    tree = add(b"")  # the page tree, filled in once its pages are numbered
    kids: list[int] = []
    for page in pages:
        stream = zlib.compress("\n".join(page.ops).encode("ascii"))
        contents = add(
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
            + stream + b"\nendstream"
        )
        kids.append(add(
            f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {contents} 0 R >>".encode()
        ))
    objects[tree - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
        f"/Count {len(kids)} >>".encode()
    )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree} 0 R >>".encode()

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _utf16_bom(text: str) -> bytes:
    return ("FEFF" + text.encode("utf-16-be").hex().upper()).encode("ascii")
