"""The new classes for the new school year, read from a CSV (``mamoru rollover --classes``).

One row per child whose class changes: where the child is now (学校, 学年, 組, 番号 of the
current year) and the class (新しい組) and optionally the number (新しい番号) in the next
grade. Children not listed keep their class name and number. A moved child without a new
number gets none, since the old one may be taken in the new class.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass

from engine.people.directory import parse_class, parse_grade
from engine.platform.csv_io import decode_lines, delimiter_of
from engine.platform.errors import InputError

HEADERS: dict[str, tuple[str, ...]] = {
    "school": ("学校", "school"),
    "grade": ("学年", "grade"),
    "class": ("組", "class"),
    "number": ("番号", "number"),
    "new_class": ("新しい組", "new_class"),
    "new_number": ("新しい番号", "new_number"),
}
_REQUIRED = ("school", "grade", "class", "number", "new_class")


@dataclass(frozen=True)
class ClassMove:
    line: int
    school: str
    grade: int
    class_name: str
    number: int
    new_class: str
    new_number: int | None


def _number(text: str) -> int:
    plain = unicodedata.normalize("NFKC", text).strip()
    if not plain.isdigit() or not 1 <= int(plain) <= 999:
        raise InputError(f"番号「{text.strip()}」は 1〜999 の数字です (invalid number)")
    return int(plain)


def parse_class_moves(data: bytes, encoding: str = "auto") -> list[ClassMove]:
    """Every row checked; raises one InputError listing every bad line (nothing is used)."""
    used, lines = decode_lines(data, encoding)
    content = [(n, t) for n, t in lines if t is None or t.strip(" ,\t\u3000")]
    if not content or content[0][1] is None:
        raise InputError(
            "組替えファイルが空か、見出しが読めません (empty file or unreadable header)"
        )
    aliases = {
        unicodedata.normalize("NFKC", a).lower(): name
        for name, names in HEADERS.items() for a in names
    }
    delimiter = delimiter_of(content[0][1])
    header = next(csv.reader([content[0][1]], delimiter=delimiter))
    columns: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = aliases.get(unicodedata.normalize("NFKC", cell).strip().lower())
        if name is None and cell.strip():
            raise InputError(
                f"見出し「{cell}」は分かりません (unknown column); 使える見出し: "
                f"{'、'.join(n[0] for n in HEADERS.values())}"
            )
        if name is not None:
            columns[name] = i
    missing = [HEADERS[r][0] for r in _REQUIRED if r not in columns]
    if missing:
        raise InputError(f"見出しに {'、'.join(missing)} がありません (missing columns)")
    moves: list[ClassMove] = []
    errors: list[str] = []
    for number, text in content[1:]:
        try:
            if text is None:
                raise InputError(f"文字コードが {used} として読めません")
            cells = next(csv.reader([text], strict=True, delimiter=delimiter))
            cells += [""] * (len(header) - len(cells))
            get = {name: cells[i].strip() for name, i in columns.items()}
            moves.append(ClassMove(
                number, get["school"], parse_grade(get["grade"]), parse_class(get["class"]),
                _number(get["number"]), parse_class(get["new_class"]),
                _number(get["new_number"]) if get.get("new_number") else None,
            ))
        except (InputError, csv.Error) as exc:
            errors.append(f"{number} 行目: {exc}")
    if errors:
        raise InputError(f"組替えファイルに誤りが {len(errors)} 行あります: " + "; ".join(errors))
    return moves
