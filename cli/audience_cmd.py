"""`mamoru send` to people: --board, --school, --grade, --class, --group, --account, --category.

Names on the command line become an ``Audience`` (engine.people); an unknown school, grade,
class or group is answered with what exists, before anything is stored. How they combine:

- ``--school S`` alone is the whole school; with ``--grade G`` it is those grades of each
  school given; ``--class`` is ``3-1`` (grade 3, class 1) or, with one ``--grade``, just ``1``;
- ``--group`` is a group name, or ``school-code/name`` when several schools use the name;
- ``--board`` is every account of the board; ``--account`` one account by its id;
- everything given is added together, each address once.

``--read-confirmation [--remind-after 2h] [--reminders 2]`` asks for 「確認しました」 on the
personal page (engine/twoway); it sends through the same fan-out even with ``--to`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cli.audit_trail import Trail, audited
from engine.people import Audience, Category, FanOut, People
from engine.people.directory import (
    Executor,
    current_year,
    find_board,
    find_class,
    find_grade,
    find_group,
    find_organisation,
    parse_class,
    parse_grade,
)
from engine.platform.config import Settings, parse_duration
from engine.platform.errors import ConfigError, InputError
from engine.queue import NewBroadcast
from engine.twoway import send_broadcast
from engine.twoway.asks import DEFAULT_REMIND_AFTER, DEFAULT_REMINDERS, Asks, ReadPolicy


@dataclass(frozen=True)
class AudienceOptions:
    board: bool = False
    schools: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    accounts: tuple[int, ...] = ()
    category: str | None = None
    asks: Asks | None = None

    def names_people(self) -> bool:
        """True when some option selects people (not just the category)."""
        return bool(
            self.board or self.schools or self.grades or self.classes or self.groups
            or self.accounts
        )

    def given(self) -> bool:
        return self.names_people() or self.category is not None or self.asks is not None


def read_asks(asked: bool, remind_after: str | None, reminders: int | None) -> Asks | None:
    """The read confirmation ``--read-confirmation`` asks for, checked; None: not asked."""
    if not asked:
        if remind_after is not None or reminders is not None:
            raise InputError(
                "--remind-after と --reminders は --read-confirmation と一緒に指定します "
                "(they need --read-confirmation)"
            )
        return None
    after = DEFAULT_REMIND_AFTER
    if remind_after is not None:
        try:
            after = timedelta(seconds=parse_duration("--remind-after", remind_after))
        except ConfigError:
            raise InputError(
                f"--remind-after {remind_after!r}: 2h や 90m のように書いてください "
                "(write e.g. 2h or 90m)"
            ) from None
    policy = ReadPolicy(after, DEFAULT_REMINDERS if reminders is None else reminders)
    asks = Asks(read=policy)
    asks.check(datetime.now(UTC))
    return asks


async def audience_of(
    db: Executor, people: People, opts: AudienceOptions, board_id: int | None = None
) -> Audience:
    """The audience the options name, or InputError naming what does not exist. With
    ``board_id`` (acting as a staff account or key of that board) names are looked up in that
    board only, and ``--board`` is that board."""
    if (opts.grades or opts.classes) and not opts.schools:
        raise InputError("--grade と --class には --school が必要です (name the school)")
    year = await current_year(db, people.clock.now(), create=False)
    schools = [await find_organisation(db, s, board_id) for s in opts.schools]
    grades = [parse_grade(g) for g in opts.grades]
    classes: list[tuple[int, str]] = []
    for c in opts.classes:
        g_text, sep, name = c.replace("年", "-").rpartition("-")
        if sep:
            classes.append((parse_grade(g_text), parse_class(name)))
        elif len(grades) == 1:
            classes.append((grades[0], parse_class(c)))
        else:
            raise InputError(
                f"--class {c}: 学年を付けて 3-1 のように書いてください "
                f"(write grade-class, e.g. 3-1)"
            )
    audience = Audience(
        boards=(board_id or (await find_board(db)).id,) if opts.board else (),
        groups=tuple([
            (await find_group(db, g, schools[0] if len(schools) == 1 else None, board_id)).id
            for g in opts.groups
        ]),
        accounts=tuple(opts.accounts),
    )
    school_ids, grade_ids, class_ids = [], [], []
    for school in schools:
        if classes:
            class_ids += [await find_class(db, school, g, n, year) for g, n in classes]
            # A grade also given without a class of its own means the whole grade.
            grade_ids += [
                await find_grade(db, school, g, year)
                for g in grades if g not in {cg for cg, _ in classes}
            ]
        elif grades:
            grade_ids += [await find_grade(db, school, g, year) for g in grades]
        else:
            school_ids.append(school.id)
    if opts.accounts:
        known = {
            r["id"] for r in await db.fetch(
                "SELECT a.id FROM accounts a JOIN organisations o ON o.id = a.school_id "
                "WHERE a.id = ANY($1::bigint[]) AND a.state = 'active' "
                "AND ($2::bigint IS NULL OR o.parent_id = $2)",
                list(opts.accounts), board_id,
            )
        }
        missing = sorted(set(opts.accounts) - known)
        if missing:
            raise InputError(f"--account {missing[0]} はありません (no such active account)")
    return Audience(
        audience.boards, tuple(school_ids), tuple(grade_ids), tuple(class_ids), audience.groups,
        audience.accounts,
    )


async def enqueue_for_people(
    settings: Settings, broadcast: NewBroadcast, opts: AudienceOptions
) -> FanOut:
    """Resolve the audience and fan the broadcast out in one transaction."""
    from engine.delivery.context import Engine

    category = Category.parse(opts.category) if opts.category else Category.NOTICE
    engine = await Engine.open(settings)
    try:
        people = await People.open(engine.pool, settings.people, engine.clock)
        audience = await audience_of(engine.pool, people, opts)
        return await audited(
            engine.pool, settings, engine.clock,
            Trail("broadcast.send", broadcast.subject[:100],
                  detail_of=lambda f: f"broadcast={f.broadcast_id} {f.summary_ja()} "
                                      f"priority={broadcast.priority.name.lower()}"),
            send_broadcast(
                people, engine.queue, broadcast, audience, category, settings.queue.max_age,
                asks=opts.asks,
            ),
        )
    finally:
        await engine.close()
