"""Reading an accounts CSV: encoding, headers and every row checked, with line numbers.

The file comes from an existing system or from Excel: UTF-8 with or without a BOM,
Shift_JIS/CP932 or UTF-16 with a BOM (tab-separated, as Excel's 「Unicode テキスト」).
``engine.platform.csv_io.decode_lines`` picks the encoding (or takes the one given) and decodes
line by line, so one mis-encoded line is reported as that line instead of spoiling the file. A
field may not span lines (the files this reads never need it; a stray quote is reported).

Headers may be Japanese or English (``HEADERS``); contacts are ``連絡先1``, ``連絡先2``, ...
(``contact1`` ...), as many as the file has. ``parse_rows`` checks what needs no database;
``engine.people.importing`` checks the rest (schools, groups, duplicates) and matches rows to
the accounts they update. ``ParsedFile.columns`` says which fields the file has: a field it
lacks is left as it is on an account it updates.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field

from engine.people.codes import normalise_code
from engine.people.directory import parse_class, parse_grade
from engine.people.models import AccountKind
from engine.platform.address import normalise_address
from engine.platform.csv_io import decode_lines, delimiter_of, plain_cell
from engine.platform.errors import InputError

HEADERS: dict[str, tuple[str, ...]] = {
    "school": ("学校", "学校名", "学校コード", "school"),
    "grade": ("学年", "grade"),
    "class": ("組", "クラス", "class"),
    "number": ("番号", "出席番号", "number"),
    "name": ("氏名", "名前", "name"),
    "kind": ("種別", "kind"),
    "code": ("登録コード", "code"),
    "groups": ("グループ", "groups"),
    # Written by export so that operators can name one account (`send --account ID`); an
    # import updates the account a row's ID names.
    "id": ("ID", "id", "アカウントID"),
    # Written by export (登録済み/未確認); read and ignored.
    "status": ("登録状況", "status"),
}
_CONTACT_HEADER = re.compile(r"^(?:連絡先|contact)\s*(\d{1,2})$")
_GROUP_SEPARATORS = re.compile(r"[;；、,，|]")
_KINDS = {
    "": AccountKind.CHILD, "child": AccountKind.CHILD, "児童": AccountKind.CHILD,
    "生徒": AccountKind.CHILD, "園児": AccountKind.CHILD, "児童生徒": AccountKind.CHILD,
    "staff": AccountKind.STAFF, "教職員": AccountKind.STAFF, "職員": AccountKind.STAFF,
    "教員": AccountKind.STAFF,
}


@dataclass(frozen=True)
class Row:
    """One row that passed the checks that need no database."""

    line: int
    school: str
    kind: AccountKind
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    code: str | None
    contacts: tuple[str, ...]
    groups: tuple[str, ...]
    # The account this row updates, when the file has an ID column and the cell is filled.
    account_id: int | None = None


@dataclass
class ParsedFile:
    encoding: str
    rows: list[Row] = field(default_factory=list)
    # The fields the file has a column for ("school", "grade", ..., "contacts", "groups").
    columns: frozenset[str] = frozenset()
    # (line, why) for every bad line, in line order once sorted.
    errors: list[tuple[int, str]] = field(default_factory=list)


def _key(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().lower()


def parse_rows(data: bytes, encoding: str = "auto") -> ParsedFile:
    """Check the header and every row; raises InputError only when the file is unusable."""
    used, lines = decode_lines(data, encoding)
    parsed = ParsedFile(used)
    header_at = next((i for i, (_, text) in enumerate(lines) if text is None or text.strip()), None)
    if header_at is None:
        raise InputError("ファイルが空です (the file is empty)")
    header_line, header_text = lines[header_at]
    if header_text is None:
        raise InputError(
            f"{header_line} 行目 (見出し) の文字コードが {used} として読めません "
            f"(the header line is not {used}; try --encoding)"
        )
    delimiter = delimiter_of(header_text)
    columns = _columns(next(csv.reader([header_text], delimiter=delimiter)))
    parsed.columns = frozenset(
        "contacts" if name.startswith("contact") else name for name in columns
    )
    for number, text in lines[header_at + 1 :]:
        if text is None:
            parsed.errors.append(
                (number, f"文字コードが {used} として読めません (not valid {used})")
            )
            continue
        if not text.strip(" ,\t\u3000"):
            continue
        try:
            parsed.rows.append(_row(number, text, columns, delimiter))
        except InputError as exc:
            parsed.errors.append((number, str(exc)))
    return parsed


def _columns(header: list[str]) -> dict[str, int]:
    """Field name (school, ..., contact1, ...) -> column index; unknown or repeated: error."""
    names = {alias: name for name, aliases in HEADERS.items() for alias in aliases}
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _key(cell)
        if not key:
            continue
        m = _CONTACT_HEADER.match(key)
        name = f"contact{int(m.group(1))}" if m else names.get(key)
        if name is None:
            known = "、".join(aliases[0] for aliases in HEADERS.values())
            raise InputError(
                f"見出し「{cell}」は分かりません (unknown column). 使える見出し: {known}、"
                f"連絡先1、連絡先2 ... (or English: {', '.join(HEADERS)}, contact1, ...)"
            )
        if name in columns:
            raise InputError(f"見出し「{cell}」が 2 回あります (repeated column)")
        columns[name] = index
    for required in ("school", "name"):
        if required not in columns:
            raise InputError(
                f"見出しに「{HEADERS[required][0]}」({required}) がありません (missing column)"
            )
    return columns


def _row(number: int, text: str, columns: dict[str, int], delimiter: str = ",") -> Row:
    try:
        cells = next(csv.reader([text], strict=True, delimiter=delimiter))
    except csv.Error as exc:
        raise InputError(f"CSV として読めません ({exc}); 引用符 (\") を確認してください") from None
    width = max(columns.values()) + 1
    if len(cells) > width and any(c.strip() for c in cells[width:]):
        raise InputError(f"列が多すぎます ({len(cells)} 列; 見出しは {width} 列)")
    cells += [""] * (width - len(cells))

    def get(name: str) -> str:
        return plain_cell(cells[columns[name]].strip()) if name in columns else ""

    school = get("school")
    if not school:
        raise InputError("学校が空です (school is empty)")
    kind = _KINDS.get(_key(get("kind")))
    if kind is None:
        raise InputError(f"種別「{get('kind')}」は 児童/生徒/教職員 のどれかです (unknown kind)")
    grade = parse_grade(get("grade")) if get("grade") else None
    if grade is None and kind is AccountKind.CHILD:
        raise InputError("児童・生徒には学年が必要です (grade is required for a child)")
    class_name = parse_class(get("class")) if get("class") else None
    if class_name is not None and grade is None:
        raise InputError("組には学年が必要です (a class needs a grade)")
    num = None
    if get("number"):
        plain = unicodedata.normalize("NFKC", get("number"))
        if not plain.isdigit() or not 1 <= int(plain) <= 999:
            raise InputError(f"番号「{get('number')}」は 1〜999 の数字です (invalid number)")
        num = int(plain)
    name = get("name")
    if not name:
        raise InputError("氏名が空です (name is empty)")
    if len(name) > 100:
        raise InputError("氏名が 100 文字を超えています (name too long)")
    code = normalise_code(get("code")) if get("code") else None
    contacts: list[str] = []
    for key in sorted((k for k in columns if k.startswith("contact")), key=lambda k: int(k[7:])):
        value = get(key)
        if not value:
            continue
        try:
            address = normalise_address(value)
        except InputError as exc:
            raise InputError(
                f"連絡先{key[7:]}「{value}」はメールアドレスとして正しくありません ({exc})"
            ) from None
        if address not in contacts:
            contacts.append(address)
    groups = tuple(dict.fromkeys(
        g.strip() for g in _GROUP_SEPARATORS.split(get("groups")) if g.strip()
    ))
    account_id = None
    if get("id"):
        plain = unicodedata.normalize("NFKC", get("id"))
        if not plain.isdigit() or not 0 < int(plain) < 2**63:
            raise InputError(f"ID「{get('id')}」は数字です (invalid account id)")
        account_id = int(plain)
    return Row(
        number, school, kind, grade, class_name, num, name, code, tuple(contacts), groups,
        account_id,
    )
