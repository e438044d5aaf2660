"""Registration notices: one printed page per child with the code, the address and a QR code.

The QR code holds ``mailto:<registration address>``, so a phone's camera opens the mailer with
the address filled in and the guardian only has to send the (empty) mail. The registration
address is given by the caller: the board's or the school's, as the registration feature
(a later issue) defines them.
"""

from __future__ import annotations

from dataclasses import dataclass

import segno
from fpdf import FPDF

from engine.people.directory import Executor, current_year, find_class, find_grade
from engine.people.models import Organisation
from engine.people.store import ACCOUNT_NAME, CODE, People
from engine.platform.address import domain_of, normalise_address
from engine.platform.errors import InputError
from engine.platform.pdf import a4_document, centred, filled_rectangles, finish, lacking

NOTICES_SQL = """
SELECT g.grade, c.name AS class_name, a.number, a.name_sealed, a.code_sealed
FROM accounts a
LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id
WHERE a.school_id = $1 AND a.state = 'active' AND a.kind = 'child'
  AND ($2::bigint IS NULL OR a.grade_id = $2) AND ($3::bigint IS NULL OR a.class_id = $3)
  AND (NOT $4::boolean OR NOT EXISTS (
      SELECT 1 FROM contact_accounts ca JOIN contacts k ON k.id = ca.contact_id
      WHERE ca.account_id = a.id AND k.state = 'active' AND k.confirmed_at IS NOT NULL))
ORDER BY g.grade, c.name, a.number NULLS LAST, a.id
"""


@dataclass(frozen=True)
class Notice:
    school: str
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    code: str


async def notices_for(
    people: People,
    db: Executor,
    school: Organisation,
    grade: int | None = None,
    class_name: str | None = None,
    unregistered: bool = False,
) -> list[Notice]:
    """The children of a school (or of one grade or class), in class order, names opened;
    ``unregistered``: only those no confirmed contact receives for yet."""
    if class_name is not None and grade is None:
        raise InputError("--class には --grade が必要です (a class needs its grade)")
    year = await current_year(db, people.clock.now(), create=False)
    grade_id = await find_grade(db, school, grade, year) if grade is not None else None
    class_id = (
        await find_class(db, school, grade, class_name, year)
        if grade is not None and class_name is not None else None
    )
    rows = await db.fetch(NOTICES_SQL, school.id, grade_id, class_id, unregistered)
    opened = people.sealer.open
    return [
        Notice(
            school.name, r["grade"], r["class_name"], r["number"],
            opened(r["name_sealed"], ACCOUNT_NAME), opened(r["code_sealed"], CODE),
        )
        for r in rows
    ]


def qr_text(address: str) -> str:
    return f"mailto:{address}"


@dataclass(frozen=True)
class NoticesPdf:
    pdf: bytes
    # Per notice whose name or class the font cannot print: where it is (学年・組・番) and the
    # characters left out, for the operator to write in by hand.
    unprintable: list[tuple[str, str]]


def notices_pdf(notices: list[Notice], address: str) -> NoticesPdf:
    """One A4 page per notice, and the notices with characters the font lacks."""
    address = normalise_address(address)
    if not notices:
        raise InputError("対象の児童生徒がいません (no children to print notices for)")
    qr = segno.make(qr_text(address), error="m")
    pdf = a4_document("メール配信 登録のご案内")
    unprintable = []
    for n in notices:
        missing = lacking(pdf, f"{n.school}{n.class_name or ''}{n.name}")
        if missing:
            unprintable.append((_place(n) or n.school, missing))
        _page(pdf, n, address, qr)
    return NoticesPdf(finish(pdf), unprintable)


def _place(n: Notice) -> str:
    return "".join([
        f"{n.grade}年" if n.grade is not None else "",
        f"{n.class_name}組" if n.class_name else "",
        f" {n.number}番" if n.number is not None else "",
    ])


def _page(pdf: FPDF, n: Notice, address: str, qr: segno.QRCode) -> None:
    """One notice; positions in points from the top left, text placed by its baseline."""
    pdf.add_page()
    left = 60.0

    def text(baseline: float, size: float, line: str) -> None:
        pdf.set_font_size(size)
        pdf.text(left, baseline, line)

    pdf.set_font_size(20)
    centred(pdf, 72, "メール配信サービス 登録のご案内")
    text(117, 12, f"{n.school}　{_place(n)}".rstrip())
    text(142, 14, f"{n.name} さんの保護者の方へ")
    lines = [
        "学校からの緊急連絡やお知らせを、メールでお届けします。",
        "次の手順で登録してください。",
        "1. 右の QR コードを読み取るか、下の登録用アドレスへ空メールを送ります。",
        "2. 返信メールのリンクを開き、下の登録コードを入力します。",
        "3. 登録完了のメールが届いたら、登録は終わりです。",
        "お子様が 2 人以上いる場合は、同じアドレスでそれぞれの",
        "登録コードを入力してください (メールは 1 通で届きます)。",
        f"迷惑メール対策をしている場合は、{domain_of(address)} からの",
        "メールを受け取れるように設定してください。",
    ]
    for i, line in enumerate(lines):
        text(182 + i * 20, 11, line)
    pdf.set_line_width(1)
    pdf.rect(left - 10, 392, pdf.w - 2 * (left - 10), 150)
    text(422, 11, "登録用アドレス")
    text(447, 15, address)
    text(487, 11, "登録コード")
    text(522, 26, n.code)
    _draw_qr(pdf, qr, x=pdf.w - left - 130, y=247, size=130)
    text(592, 10, "この用紙は大切に保管してください。")
    text(608, 10, "登録コードは、ほかの人に教えないでください。")


def _draw_qr(pdf: FPDF, qr: segno.QRCode, x: float, y: float, size: float) -> None:
    """The code in a square of ``size`` at (x, y), with the four-module quiet zone it needs.

    Each run of dark modules in a row is one rectangle, all filled together.
    """
    unit = size / (len(qr.matrix) + 8)
    runs: list[tuple[float, float, float, float]] = []
    for row, bits in enumerate(qr.matrix):
        top = y + (row + 4) * unit
        start: int | None = None
        for col, dark in enumerate([*bits, 0]):
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                runs.append((x + (start + 4) * unit, top, (col - start) * unit, unit))
                start = None
    filled_rectangles(pdf, runs)
