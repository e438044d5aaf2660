"""Mail submitted over SMTP by an application: group address -> audience -> broadcast.

The SMTP side (``inbound/submission.py``) parses the mail and authenticates the API key; this
module turns what it read into a broadcast through ``engine.staff.sending.create``, so a mail
has exactly the rights, checks and audit entries of ``POST /api/apps/broadcasts``.

Group addresses (``[submission] domain`` = D; operator manual: docs/submission.md)::

    all@<school code>.D          the whole school
    grade3@<school code>.D       grade 3 of the school (this school year)
    grade3-2@<school code>.D     class 2 of grade 3
    group-<name>@<school code>.D a group the school owns
    all@D, group-<name>@D        the whole board, a group the board owns
    audience@<school code>.D     the audience is the X-Mamoru-Audience header: the same words,
                                 separated by commas (e.g. "grade3-1, grade3-2, group-見守り")

Local parts and domains are compared without case (group names as registered). Several group
addresses in one mail add up, each address once. Anything else is ``UnknownGroupAddress``.

The mail's Message-ID, when it has one, is the idempotency key: a client that sends the same
mail again after a lost reply (its 250 never arrived) gets the first broadcast back and nothing
is sent twice; the same Message-ID with a different content is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from engine.people import Audience, Category, People
from engine.people.directory import (
    Executor,
    current_year,
    find_board,
    find_class,
    find_grade,
    find_group,
    list_organisations,
    parse_class,
)
from engine.people.models import Organisation, OrgKind
from engine.platform.clock import Clock
from engine.platform.errors import InputError
from engine.queue import Priority, Queue
from engine.staff import audit, sending
from engine.staff.models import AuthError, NotFoundError, Principal, RightsError
from engine.staff.rights import check_audience, tenant
from engine.staff.store import Staff
from engine.twoway.page_limits import PageBusy, count_request, hits

#: The local part that takes its audience from the X-Mamoru-Audience header.
HEADER_AUDIENCE = "audience"

_GRADE = re.compile(r"grade(\d{1,2})(?:-(.{1,20}))?")


class UnknownGroupAddress(InputError):
    """No audience is known at this address; nothing was stored (SMTP 550 5.1.1)."""


@dataclass(frozen=True)
class Submission:
    """What the SMTP side read from one mail."""

    recipients: tuple[str, ...]
    sender: str
    subject: str
    body: str
    audience_header: str = ""
    category: str = ""
    priority: str = ""
    message_id: str = ""


def _unknown(address: str, why: str) -> UnknownGroupAddress:
    return UnknownGroupAddress(
        f"グループアドレス <{address}> はありません ({why}) / unknown group address "
        f"<{address}>: {why}"
    )


async def _scope(
    db: Executor, address: str, domain: str, board_id: int | None = None
) -> tuple[Organisation, str]:
    """The organisation (board or school) the address's domain names, and its local part.
    With ``board_id`` (the sender's board) the board's domain is that board and only its
    schools are known: another board's school code is as unknown as a mistyped one."""
    local, at, host = address.strip().strip("<>").rpartition("@")
    host, domain = host.lower().rstrip("."), domain.lower().rstrip(".")
    if not at or not local:
        raise _unknown(address, "not an address")
    orgs = await list_organisations(db)
    if host == domain:
        if board_id is None:
            return await find_board(db), local
        for org in orgs:
            if org.id == board_id:
                return org, local
        raise _unknown(address, "no board")
    label = host.removesuffix("." + domain)
    if label == host or not label or "." in label:
        raise _unknown(address, f"the domain is not {domain} or <school code>.{domain}")
    for org in orgs:
        if (org.kind is not OrgKind.BOARD and org.code.lower() == label
                and board_id in (None, org.parent_id)):
            return org, local
    raise _unknown(address, f"no school with the code {label!r}")


async def _words_audience(
    db: Executor, people: People, org: Organisation, words: list[str], address: str
) -> Audience:
    boards: list[int] = []
    schools: list[int] = []
    grades: list[int] = []
    classes: list[int] = []
    groups: list[int] = []
    year = await current_year(db, people.clock.now(), create=False)
    board = org.kind is OrgKind.BOARD
    for raw in words:
        word = raw.strip()
        lower = word.lower()
        if lower == "all":
            (boards if board else schools).append(org.id)
        elif lower.startswith("group-") and len(word) > 6:
            try:
                groups.append((await find_group(db, f"{org.code}/{word[6:]}")).id)
            except InputError:
                raise _unknown(address, f"no group {word[6:]!r} of {org.code}") from None
        elif (m := _GRADE.fullmatch(lower)) and not board:
            try:
                if m.group(2) is None:
                    grades.append(await find_grade(db, org, int(m.group(1)), year))
                else:
                    classes.append(await find_class(
                        db, org, int(m.group(1)), parse_class(word[len(m.group(1)) + 6:]), year
                    ))
            except InputError:
                raise _unknown(address, f"no {word} at {org.code}") from None
        else:
            raise _unknown(
                address, f"{word!r} is not all, gradeN, gradeN-CLASS or group-NAME"
                + (" (grades are addressed at a school's domain)" if board else "")
            )
    return Audience(tuple(boards), tuple(schools), tuple(grades), tuple(classes), tuple(groups))


def _add(a: Audience, b: Audience) -> Audience:
    def union(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(x + y))

    return Audience(
        union(a.boards, b.boards), union(a.schools, b.schools), union(a.grades, b.grades),
        union(a.classes, b.classes), union(a.groups, b.groups), union(a.accounts, b.accounts),
    )


async def audience_of(
    db: Executor, people: People, recipients: tuple[str, ...], domain: str,
    header: str | None = None, board_id: int | None = None,
) -> Audience:
    """The audience the group addresses name together, within the board ``board_id`` (None:
    any). ``header`` None: an ``audience@`` address is only checked for its school (at RCPT
    time, before the header is known)."""
    total = Audience()
    for address in recipients:
        org, local = await _scope(db, address, domain, board_id)
        if local.lower() == HEADER_AUDIENCE:
            if header is None:
                continue
            words = [w for w in re.split(r"[,、，\s]+", header) if w]
            if not words:
                raise _unknown(address, "the X-Mamoru-Audience header is missing or empty")
            total = _add(total, await _words_audience(db, people, org, words, address))
        else:
            total = _add(total, await _words_audience(db, people, org, [local], address))
    return total


async def check_recipient(
    staff: Staff, people: People, actor: Principal, address: str, domain: str
) -> None:
    """At RCPT: ``UnknownGroupAddress`` or ``RightsError`` (another school's address, in the
    audit log) before the mail's content is taken."""
    board = tenant(actor)
    audience = await audience_of(staff.pool, people, (address,), domain, board_id=board)
    if audience.is_empty():  # audience@: at least the school must be the key's own
        org, _ = await _scope(staff.pool, address, domain, board)
        audience = Audience(schools=(org.id,)) if org.kind is not OrgKind.BOARD else Audience(
            boards=(org.id,)
        )
    try:
        await check_audience(staff.pool, actor, audience)
    except RightsError as exc:
        await staff.log(
            actor, "broadcast.create", address[:200], audit.Result.DENIED, str(exc)[:300]
        )
        raise


def _priority(text: str) -> Priority:
    if not text:
        return Priority.NORMAL
    try:
        return Priority.parse(text)
    except ValueError:
        raise InputError(
            f"優先度「{text}」はありません (X-Mamoru-Priority: emergency, normal or bulk)"
        ) from None


async def submit(
    staff: Staff,
    people: People,
    queue: Queue,
    actor: Principal,
    mail: Submission,
    domain: str,
    max_age: float,
) -> sending.Created:
    """Resolve the group addresses and send the mail to them, within the key's rights; every
    outcome (sent, refused, bad input) is in the audit log."""
    detail = f"smtp to={','.join(mail.recipients)}"[:300]
    try:
        audience = await audience_of(
            staff.pool, people, mail.recipients, domain, mail.audience_header, tenant(actor)
        )
        req = sending.BroadcastRequest(
            sender=mail.sender, subject=mail.subject, body=mail.body, audience=audience,
            category=Category.parse(mail.category) if mail.category else Category.NOTICE,
            priority=_priority(mail.priority),
        )
        made = await sending.create(
            staff, people, queue, actor, req, max_age, mail.message_id or None
        )
    except (RightsError, NotFoundError, AuthError) as exc:
        await staff.log(actor, "broadcast.create", "", audit.Result.DENIED, str(exc)[:300])
        raise
    except InputError as exc:
        await staff.log(actor, "broadcast.create", "", audit.Result.FAILED, str(exc)[:300])
        raise
    if not made.replayed:
        await staff.log(
            actor, "broadcast.create", f"broadcast {made.broadcast_id}", audit.Result.OK, detail
        )
    return made


class SubmitRate:
    """At most ``per_minute`` mails per API key a minute, in fixed one-minute windows counted
    in the database (the pages' counters, engine/twoway/page_limits.py, under ``submit:<key>``),
    so that every ``serve`` sharing the database counts the same key together."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, per_minute: int) -> None:
        self.pool, self.clock, self.per_minute = pool, clock, per_minute

    async def allows(self, key_id: int) -> bool:
        return await hits(self.pool, f"submit:{key_id}", self.clock.now()) < self.per_minute

    async def count(self, key_id: int) -> None:
        """Count one mail taken (a retry of one already sent is not counted)."""
        try:
            await count_request(self.pool, f"submit:{key_id}", self.clock.now(),
                                limit=self.per_minute)
        except PageBusy:
            pass  # taken already; the next MAIL is refused
