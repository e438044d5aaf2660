"""`mamoru notices`: print-ready registration notices (PDF), one page per child."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.audit_trail import Trail
from cli.people_session import ConfigOption, fail, note, run_people, settings_of
from engine.people import People
from engine.people.directory import find_organisation, parse_class, parse_grade
from engine.platform.private_files import write_private

if TYPE_CHECKING:
    from engine.people.notices import NoticesPdf


def notices(
    school: Annotated[str, typer.Option(help="School (code or name).")],
    address: Annotated[
        str, typer.Option(help="Registration address printed and put in the QR code.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The PDF file to write.")],
    grade: Annotated[str | None, typer.Option(help="Only this grade.")] = None,
    class_: Annotated[
        str | None, typer.Option("--class", help="Only this class of --grade.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Registration notices with code, address and QR code (登録案内の印刷用 PDF)."""
    # fpdf and the font are imported by the one command that prints, not by every command.
    from engine.people.notices import notices_for, notices_pdf

    settings = settings_of(config)

    async def go(p: People) -> tuple[int, NoticesPdf]:
        org = await find_organisation(p.pool, school)
        found = await notices_for(
            p, p.pool, org,
            parse_grade(grade) if grade else None,
            parse_class(class_) if class_ else None,
        )
        return len(found), notices_pdf(found, address)

    count, made = run_people(settings, go, Trail(
        "notices.print", school, detail_of=lambda done: f"notices={done[0]}"
    ))
    try:
        write_private(out_file, made.pdf)
    except OSError as exc:
        fail(f"{out_file} に書き込めません: {exc.strerror}", 1)
    note(f"{count} 人分の登録案内を {out_file} に書き出しました ({len(made.pdf) // 1024} KB)。")
    if made.unprintable:
        listed = "、".join(f"{where}「{chars}」" for where, chars in made.unprintable)
        note(f"注意: フォントにない文字は印刷されません。次の {len(made.unprintable)} 人分は"
             f"手書きで補ってください / characters the font lacks are left out: {listed}")
