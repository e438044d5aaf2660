"""Single roster changes and the registration rate on the command line:
`mamoru accounts add|edit|move|close|rate`, `mamoru contacts add|remove`,
`mamoru schools rename|close`, `mamoru schools classes list|add|rename|remove`
(engine/people/changes.py, class_units.py, engine/people/rate.py).

Each change is audited: as the command line (the OS user) by default, or with ``--as LOGIN``
as that staff member, after the same rights check the staff API makes
(engine/staff/roster.py): the board its schools, a school's administrator their own school.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from cli.accounts_cmd import app as accounts_app
from cli.audit_trail import Trail
from cli.contacts_cmd import app as contacts_app
from cli.people_session import ConfigOption, fail, out, run_people, settings_of
from cli.schools_cmd import app as schools_app
from cli.staff_session import AsOption, acting_principal, run_staff
from engine.people import People
from engine.people import changes as ch
from engine.people import class_units as cu
from engine.people.directory import (
    current_year,
    find_class,
    find_organisation,
    parse_class,
    parse_grade,
)
from engine.people.models import AccountKind
from engine.people.rate import RateRow, registration_rate
from engine.people.rollover import Farewell
from engine.platform.address import normalise_address
from engine.platform.config import Settings
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue
from engine.staff import roster
from engine.staff.models import Principal
from engine.staff.store import Staff

T = TypeVar("T")

AccountArg = Annotated[int, typer.Argument(help="Account ID (`accounts export` shows it).")]


def _change(
    settings: Settings,
    as_login: str | None,
    action: str,
    object_: str,
    check: Callable[[Staff, Principal], Awaitable[object]],
    work: Callable[[People], Coroutine[Any, Any, T]],
    detail_of: Callable[[T], str] | None = None,
) -> T:
    """Run one change, audited: as the command line, or as ``as_login`` after ``check``."""
    if as_login is None:
        return run_people(settings, work, Trail(action, object_, detail_of=detail_of))

    async def as_staff(p: People, staff: Staff) -> T:
        actor = await acting_principal(staff, as_login, None)

        async def checked() -> T:
            await check(staff, actor)
            return await work(p)

        return await staff.audited(actor, action, object_, checked())

    return run_staff(settings, as_staff)


def _on_account(account_id: int) -> Callable[[Staff, Principal], Awaitable[None]]:
    return lambda s, a: roster.may_change_account(s.pool, a, account_id)


def _grade_class(grade: str, class_name: str) -> tuple[int, str]:
    try:
        return parse_grade(grade), parse_class(class_name)
    except InputError as exc:
        fail(str(exc))


def _say(text: str) -> None:
    out().print(text, markup=False, soft_wrap=True)


@accounts_app.command("edit")
def edit(
    account: AccountArg,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    number: Annotated[int | None, typer.Option(help="New number in its class.")] = None,
    code: Annotated[str | None, typer.Option(help="New registration code.")] = None,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Change one account's name, number or registration code (編集)."""
    if name is None and number is None and code is None:
        fail("--name、--number、--code のどれかを指定してください (nothing to change)")
    settings = settings_of(config)
    info = _change(settings, as_login, "accounts.edit", str(account), _on_account(account),
                   lambda p: ch.edit_account(p, account, name, number, code))
    _say(f"変更しました: ID {info.id} {info.where} {info.name}")


@accounts_app.command("move")
def move(
    account: AccountArg,
    grade: Annotated[str, typer.Option(help="Grade, e.g. 3.")],
    class_name: Annotated[str, typer.Option("--class", help="Class, e.g. 2 or 2組.")],
    number: Annotated[int | None, typer.Option(help="Number in the new class.")] = None,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Move one account to another class (組替え)."""
    g, c = _grade_class(grade, class_name)
    settings = settings_of(config)
    info = _change(settings, as_login, "accounts.move", str(account), _on_account(account),
                   lambda p: ch.move_account(p, account, g, c, number),
                   detail_of=lambda i: f"to {i.grade}-{i.class_name}")
    _say(f"組を移しました: ID {info.id} {info.where} {info.name}")


@accounts_app.command("close")
def close(
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="transferred (転出) | other")] = "transferred",
    notice_body: Annotated[
        Path | None, typer.Option(help="Tell the account's contacts with this mail body.")
    ] = None,
    sender: Annotated[str | None, typer.Option(help="From address of the notice.")] = None,
    subject: Annotated[str, typer.Option(help="Subject of the notice.")] = (
        "転出に伴うメール配信終了のお知らせ"
    ),
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Close one account (転出); optionally mail its contacts a notice."""
    settings = settings_of(config)
    message = _notice(notice_body, sender, subject)
    done = _change(
        settings, as_login, "accounts.close", str(account), _on_account(account),
        lambda p: ch.close_account(
            p, account, reason,
            Farewell(message, Queue(p.pool, p.sealer), settings.queue.max_age)
            if message else None,
        ),
        detail_of=lambda d: f"reason={reason} told={d.told}",
    )
    told = f"、連絡先 {done.told} 件にお知らせ (配信 {done.notice_id})" if done.notice_id else ""
    _say(f"アカウントを終了しました: ID {done.account.id} {done.account.where}{told}")


def _notice(body: Path | None, sender: str | None, subject: str) -> NewBroadcast | None:
    if body is None:
        return None
    if sender is None:
        fail("--notice-body には --sender が必要です (give the From address)")
    try:
        text = body.read_text(encoding="utf-8-sig")
        address = normalise_address(sender)
    except OSError as exc:
        fail(f"--notice-body {body} を読めません: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"--notice-body {body} が UTF-8 ではありません (not UTF-8)")
    except InputError as exc:
        fail(f"--sender: {exc}")
    if not text.strip() or not subject.strip() or "\n" in subject or len(subject) > 200:
        fail("お知らせの本文と件名 (1 行、200 文字まで) が必要です (body and a one-line subject)")
    return NewBroadcast(address, subject.strip(), text, [])


@accounts_app.command("add")
def add(
    school: Annotated[str, typer.Option(help="School code or name.")],
    name: Annotated[str, typer.Option(help="Name.")],
    grade: Annotated[str | None, typer.Option(help="Grade (children).")] = None,
    class_name: Annotated[str | None, typer.Option("--class", help="Class.")] = None,
    number: Annotated[int | None, typer.Option(help="Number in the class.")] = None,
    contact: Annotated[list[str] | None, typer.Option(help="An address (repeatable).")] = None,
    staff_member: Annotated[
        bool, typer.Option("--staff", help="A staff member's account (教職員).")
    ] = False,
    confirmed: Annotated[bool, typer.Option("--confirmed")] = False,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Add one account (転入), checked like an import row."""
    try:
        g = parse_grade(grade) if grade else None
        c = parse_class(class_name) if class_name else None
    except InputError as exc:
        fail(str(exc))
    settings = settings_of(config)

    async def check(s: Staff, a: Principal) -> None:
        await roster.may_change_school(s.pool, a, school)

    info = _change(
        settings, as_login, "accounts.add", school, check,
        lambda p: ch.transfer_in(
            p, school, name, g, c, number, tuple(contact or ()),
            AccountKind.STAFF if staff_member else AccountKind.CHILD, confirmed,
        ),
        detail_of=lambda i: f"id={i.id}",
    )
    _say(f"登録しました: ID {info.id} {info.where} {info.name}")


@accounts_app.command("rate")
def rate(
    school: Annotated[str | None, typer.Option(help="Only this school.")] = None,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Registration rate per school, grade and class (登録率)."""
    settings = settings_of(config)
    if as_login is None:
        async def go(p: People) -> list[RateRow]:
            if school is None:
                return await registration_rate(p.pool)
            return await roster.rate_for(p.pool, _cli(), school)

        rows = run_people(settings, go)
    else:
        async def go_as(p: People, s: Staff) -> list[RateRow]:
            actor = await acting_principal(s, as_login, None)
            return await s.audited(actor, "roster.rate", school or "all",
                                   roster.rate_for(s.pool, actor, school))

        rows = run_staff(settings, go_as)
    table = Table(title="登録率 (児童生徒のアカウント)")
    for col in ("学校", "学年", "組", "人数", "登録済み", "登録率", "連絡先", "確認済み",
                "確認済み連絡先/人"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.school, "計" if r.grade is None else str(r.grade),
            "" if r.grade is None else ("計" if r.class_name is None else r.class_name),
            str(r.accounts), str(r.registered), f"{r.account_rate:.1%}", str(r.contacts),
            str(r.confirmed), f"{r.contact_rate:.2f}",
        )
    out().print(table)
    _say("登録率 = 確認済みの連絡先が 1 件以上ある人数 / 人数。"
         "確認済み連絡先/人 = 確認済みの連絡先の数 / 人数。")


def _cli() -> Principal:
    from cli.audit_trail import cli_actor

    return cli_actor()


@contacts_app.command("add")
def contact_add(
    account: AccountArg,
    address: Annotated[str, typer.Argument(help="The address.")],
    confirmed: Annotated[bool, typer.Option("--confirmed")] = False,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Add one address to an account (連絡先の追加)."""
    settings = settings_of(config)
    info = _change(settings, as_login, "contacts.add", str(account), _on_account(account),
                   lambda p: ch.add_address(p, account, address, confirmed))
    _say(f"連絡先を追加しました: ID {info.id} {info.where} {info.name}")


@contacts_app.command("remove")
def contact_remove(
    address: Annotated[str, typer.Argument(help="The address.")],
    account: Annotated[
        int | None, typer.Option(help="Only for this account (default: every account).")
    ] = None,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove an address (連絡先の削除); unsent mail to it is withdrawn when it goes."""
    settings = settings_of(config)
    if as_login is not None and account is None:
        fail("--as では --account でアカウントを指定してください (name the account)")
    check = _on_account(account) if account is not None else _nothing
    done = _change(settings, as_login, "contacts.remove", str(account or "all"), check,
                   lambda p: ch.remove_address(p, address, account),
                   detail_of=lambda d: f"links={d.links} gone={d.contact_gone} "
                                       f"withdrawn={d.withdrawn}")
    gone = "連絡先を削除しました" if done.contact_gone else "アカウントから外しました"
    _say(f"{gone} (紐付け {done.links} 件、取り消した未送信の配信 {done.withdrawn} 件)")


async def _nothing(_s: Staff, _a: Principal) -> None:
    return None


@schools_app.command("rename")
def rename(
    school: Annotated[str, typer.Argument(help="Code or name.")],
    new_name: Annotated[str, typer.Argument(help="The new name.")],
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Rename a school (校名変更)."""
    settings = settings_of(config)

    async def check(s: Staff, a: Principal) -> None:
        await roster.may_change_school(s.pool, a, school)

    org = _change(settings, as_login, "school.rename", school, check,
                  lambda p: ch.rename_school(p, school, new_name))
    _say(f"校名を変更しました: {org.code} {org.name}")


@schools_app.command("close")
def close_school(
    school: Annotated[str, typer.Argument(help="Code or name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Required: closes every account.")] = False,
    as_login: AsOption = None,
    config: ConfigOption = None,
) -> None:
    """Close a school and all its accounts (閉校)."""
    if not yes:
        fail("学校のアカウントをすべて終了します。実行するには --yes を付けてください")
    settings = settings_of(config)

    async def check(s: Staff, a: Principal) -> None:
        await roster.may_change_school(s.pool, a, school)

    org, closed = _change(settings, as_login, "school.close", school, check,
                          lambda p: ch.close_school(p, school),
                          detail_of=lambda d: f"accounts={d[1]}")
    _say(f"{org.name}を閉じました: アカウント {closed} 件を終了")




# `mamoru schools classes list|add|rename|remove` (mounted in cli/people_mount.py).
classes_app = typer.Typer(help="A school's grades and classes of this school year (学年と組).",
                          no_args_is_help=True)
SchoolArg = Annotated[str, typer.Argument(help="School code or name.")]
GradeArg = Annotated[str, typer.Argument(help="Grade: 3, ３, 3年.")]
ClassArg = Annotated[str, typer.Argument(help="Class: 1, 1組, さくら.")]


def _of_school(school: str) -> Callable[[Staff, Principal], Awaitable[object]]:
    return lambda s, a: roster.may_change_school(s.pool, a, school)


async def _class_id(p: People, school: str, grade: int, class_name: str) -> int:
    org = await find_organisation(p.pool, school)
    year = await current_year(p.pool, p.clock.now(), create=False)
    return await find_class(p.pool, org, grade, class_name, year)


@classes_app.command("list")
def classes_list(school: SchoolArg, config: ConfigOption = None) -> None:
    """Grades and classes with their active accounts and teachers."""
    settings = settings_of(config)

    async def work(p: People) -> list[cu.GradeLine]:
        org = await find_organisation(p.pool, school)
        year = await current_year(p.pool, p.clock.now(), create=False)
        return await cu.school_classes(p.pool, org.id, year)

    table = Table("学年", "組", "アカウント", "担任")
    for g in run_people(settings, work):
        for c in g.classes:
            table.add_row(f"{g.grade}年", f"{c.name}組", str(c.accounts), str(c.teachers))
        if g.without_class or not g.classes:
            table.add_row(f"{g.grade}年", "(組なし)", str(g.without_class), "")
    out().print(table)


@classes_app.command("add")
def classes_add(school: SchoolArg, grade: GradeArg, class_name: ClassArg,
                as_login: AsOption = None, config: ConfigOption = None) -> None:
    """Add a class (and its grade when the school has none yet)."""
    settings = settings_of(config)
    g, _ = _grade_class(grade, class_name)

    async def work(p: People) -> cu.ClassPlace:
        return await cu.add_class(p, (await find_organisation(p.pool, school)).id, g,
                                  class_name)

    place = _change(settings, as_login, "class.add", f"{school} {g}-{class_name}",
                    _of_school(school), work, detail_of=lambda c: f"class {c.id}")
    _say(f"組を追加しました: {place.school_name} {place.label}")


@classes_app.command("rename")
def classes_rename(school: SchoolArg, grade: GradeArg, class_name: ClassArg,
                   new_name: Annotated[str, typer.Argument(help="The new name.")],
                   as_login: AsOption = None, config: ConfigOption = None) -> None:
    """Rename a class (its accounts and teachers stay with it)."""
    settings = settings_of(config)
    g, c = _grade_class(grade, class_name)

    async def work(p: People) -> cu.ClassPlace:
        return await cu.rename_class(p, await _class_id(p, school, g, c), new_name)

    place = _change(settings, as_login, "class.rename", f"{school} {g}-{c}",
                    _of_school(school), work, detail_of=lambda x: f"to {x.name}")
    _say(f"組の名前を変更しました: {place.school_name} {place.label}")


@classes_app.command("remove")
def classes_remove(school: SchoolArg, grade: GradeArg, class_name: ClassArg,
                   as_login: AsOption = None, config: ConfigOption = None) -> None:
    """Remove a class no active account is in."""
    settings = settings_of(config)
    g, c = _grade_class(grade, class_name)

    async def work(p: People) -> cu.RemovedClass:
        return await cu.remove_class(p, await _class_id(p, school, g, c))

    gone = _change(settings, as_login, "class.remove", f"{school} {g}-{c}",
                   _of_school(school), work,
                   detail_of=lambda x: f"teachers={x.teachers} closed={x.closed_accounts}")
    _say(f"組を削除しました: {gone.place.school_name} {gone.place.label} "
         f"(外れた担任の受け持ち {gone.teachers} 件)")
