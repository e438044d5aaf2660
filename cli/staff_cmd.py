"""`mamoru staff`: the first account and emergencies — add, disable, reset a password, list.

Passwords are read from the terminal (twice, not shown) or, for scripts, from standard input
with ``--password-stdin``; never from the command line, where other users could see them.
Every change is written to the audit log as done by the command line.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from cli.audit_trail import cli_actor
from cli.people_session import ConfigOption, fail, note, out, settings_of
from cli.staff_session import run_staff
from engine.people import OrgKind, People
from engine.people.directory import (
    current_year,
    find_board,
    find_class,
    find_group,
    find_organisation,
    parse_class,
    parse_grade,
)
from engine.platform.clock import jst
from engine.platform.errors import InputError
from engine.staff import accounts
from engine.staff.models import Role, StaffMember
from engine.staff.store import Staff

app = typer.Typer(
    help="職員アカウント (staff accounts): add, disable, reset-password, list.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


@app.callback()
def staff() -> None:
    """職員アカウント (staff accounts)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("パスワードは端末から入力するか --password-stdin を使ってください "
             "(type the password on a terminal, or use --password-stdin)")
    first = typer.prompt("パスワード (password)", hide_input=True)
    again = typer.prompt("もう一度 (again)", hide_input=True)
    if first != again:
        fail("2 回の入力が一致しません (the two passwords differ)")
    return str(first)


async def _place(
    people: People, role: Role, school: str | None, classes: list[str], groups: list[str],
    board: str | None = None,
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """The organisation, class ids and group ids the options name."""
    db = people.pool
    if role is Role.BOARD:
        if school:
            raise InputError("教育委員会の職員に --school は不要です (no --school for board staff)")
        if board:
            org = await find_organisation(db, board)
            if org.kind is not OrgKind.BOARD:
                raise InputError(f"「{board}」は教育委員会ではありません (not a board)")
            return org.id, (), ()
        return (await find_board(db)).id, (), ()
    if board:
        raise InputError("--board は教育委員会の職員のときだけ使います (--board is for board "
                         "staff; a school names its board itself)")
    if not school:
        raise InputError("--school で学校を指定してください (name the school)")
    org = await find_organisation(db, school)
    year = await current_year(db, people.clock.now(), create=False)
    class_ids = []
    for c in classes:
        g_text, sep, name = c.replace("年", "-").rpartition("-")
        if not sep:
            raise InputError(
                f"--class {c}: 3-1 のように書いてください (write grade-class, e.g. 3-1)"
            )
        class_ids.append(await find_class(db, org, parse_grade(g_text), parse_class(name), year))
    group_ids = [(await find_group(db, g, org)).id for g in groups]
    return org.id, tuple(class_ids), tuple(group_ids)


@app.command()
def add(
    login: Annotated[str, typer.Argument(help="Login ID, one per person (e.g. tanaka.sho1).")],
    name: Annotated[str, typer.Option(help="Name shown in lists and the audit log.")],
    role: Annotated[
        str, typer.Option(help="board | school | teacher (教育委員会 | 学校管理者 | 教員).")
    ],
    school: Annotated[
        str | None, typer.Option(help="School (code or name); not for board staff.")
    ] = None,
    class_: Annotated[
        list[str] | None, typer.Option("--class", help="A teacher's class, e.g. 3-1 (repeat).")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="A group given to a teacher (repeat).")
    ] = None,
    board: Annotated[
        str | None,
        typer.Option(help="The board (code or name) of board staff, when there are several."),
    ] = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Add a staff account (職員の追加)."""
    settings = settings_of(config)
    try:
        parsed_role = Role.parse(role)
    except InputError as exc:
        fail(str(exc))
    password = _password(password_stdin)

    async def use(people: People, staff: Staff) -> StaffMember:
        org, classes, groups = await _place(
            people, parsed_role, school, class_ or [], group or [], board
        )
        m = await accounts.add(staff, accounts.NewStaff(
            login, name, parsed_role, org, password, classes, groups
        ))
        await staff.log(cli_actor(), "staff.add", m.login, detail=f"role={m.role.value}")
        return m

    m = run_staff(settings, use)
    out().print(
        f"登録しました: {m.login} {m.name} ({m.role.label_ja}, {m.organisation_code})",
        markup=False,
    )


@app.command()
def disable(login: str, config: ConfigOption = None) -> None:
    """Disable an account; its sessions end at once. Accounts are never deleted (無効化)."""
    settings = settings_of(config)

    async def use(people: People, staff: Staff) -> StaffMember:
        m = await accounts.disable(staff, (await accounts.find(staff, login)).id)
        await staff.log(cli_actor(), "staff.disable", m.login)
        return m

    m = run_staff(settings, use)
    out().print(f"無効にしました: {m.login} {m.name}", markup=False)


@app.command("reset-password")
def reset_password(
    login: str,
    clear_totp: Annotated[
        bool, typer.Option("--clear-totp", help="Also remove TOTP (a lost phone).")
    ] = False,
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password (the rule applies); ends the waits of every source for the login and
    the account's sessions (パスワード再設定)."""
    settings = settings_of(config)
    password = _password(password_stdin)

    async def use(people: People, staff: Staff) -> StaffMember:
        m = await accounts.reset_password(
            staff, (await accounts.find(staff, login)).id, password, clear_totp
        )
        await staff.log(cli_actor(), "staff.reset_password", m.login,
                        detail="clear_totp" if clear_totp else "")
        return m

    m = run_staff(settings, use)
    note(f"パスワードを再設定しました: {m.login}" + (" (確認コードも解除)" if clear_totp else ""))


@app.command("list")
def list_(
    school: Annotated[str | None, typer.Option(help="Only this school (code or name).")] = None,
    config: ConfigOption = None,
) -> None:
    """List staff accounts, disabled ones too (一覧)."""
    settings = settings_of(config)

    async def use(people: People, staff: Staff) -> list[StaffMember]:
        org = (await find_organisation(people.pool, school)).id if school else None
        return await accounts.list_staff(staff, org)

    members = run_staff(settings, use)
    now = datetime.now(UTC)
    table = Table(title=f"職員 ({len(members)} 件)")
    for c in ("ID", "ログイン ID", "氏名", "役割", "所属", "確認コード", "状態"):
        table.add_column(c)
    for m in members:
        # A source that failed too often waits; the account itself is never locked.
        state = "無効" if m.disabled_at else (
            f"有効 (失敗が続いた接続元は {jst(m.locked_until):%H:%M} まで待機)"
            if m.locked_until is not None and m.locked_until > now else "有効"
        )
        table.add_row(
            str(m.id), m.login, m.name, m.role.label_ja, m.organisation_code,
            "あり" if m.totp_enabled else "なし", state,
        )
    out().print(table)
