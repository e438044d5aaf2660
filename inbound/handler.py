"""The inbound SMTP conversation: which recipients are accepted, and what a received mail does.

Recipients accepted (anything else is ``550 5.7.1``: this is not a relay):

- a VERP return path whose token verifies (``engine.message.verp.delivery_id_of``), at any domain;
- one of ``inbound.service_addresses`` (the domain compared without case);
- the registration address and its ``entry-<school>@`` forms (``inbound.registration``): an
  empty mail there is answered with a personal registration link and not stored;
- ``[people] report_address`` (``inbound.report_desk``): a registered guardian's mail there is
  answered with the link to the report page and not stored;
- the ``mailto:`` of a mail's ``List-Unsubscribe`` (``engine.message.verp.unsubscribe_id_of``): any
  mail there unsubscribes the recipient of that delivery at once (``engine.people.choices``),
  as the one-click POST does, and is not stored.

A mail to a VERP address is classified with ``engine.bounce.parse_bounce`` and stored in
``bounces``, one row per verdict, or one unclassified row when nothing could be read from it.
What it does to its delivery:

- a final failure (any reason except ``delivered``, ``vacation`` and ``feedback``, whose DSN
  action is not ``delayed``) turns a ``delivered`` delivery into ``failed`` with the verdict's
  reason, category, reply code, status and diagnostic: the mail did not reach the guardian,
  whether the cause is hard (user unknown) or soft (mailbox full). A delivery still ``sending``
  is failed too (the MX bounced before the runner wrote its outcome; see
  ``engine.queue.bounced.LATE_FAILURE_SQL``). A failed one already says why and is left alone,
  and a queued or deferred one was never accepted.
- a delay notice (``Action: delayed``), an auto-reply and a delivery report change nothing.
- a complaint (``feedback``) leaves the delivery as it is (the mail did arrive) but suppresses
  the address.

Final failures and complaints are then given to ``Suppressions.record_verdicts`` with the
delivery's own recipient address. Mail to a service address is stored in ``inbound_messages``,
except a guardian's reply to a broadcast mail (``inbound.replies``): that is kept sealed with
its broadcast and answered once with a link to the personal page.

The same recipient given twice (a VERP address repeated in RCPT, in any case) is accepted once,
so one mail stores one bounce row per verdict, however many times its sender names us.

A database error answers ``451 4.3.0`` so that the sender tries again later; nothing else that
can go wrong with one mail stops the server. While the database is unreachable this is logged
once (``engine.platform.outage``), not once per mail; the pool reconnects by itself when it is
back. The handler writes no SQL: ``engine.bounce.received`` stores the mail,
``engine.queue.bounced`` fails its delivery, ``engine.bounce.suppression`` the suppression list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.bounce import BounceReport, Verdict, parse_bounce
from engine.bounce.received import BounceRow, insert_bounces, insert_messages
from engine.bounce.suppression import FEEDBACK, FailedVerdict, Suppressions
from engine.message.verp import delivery_id_of, unsubscribe_id_of
from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.outage import OutageLog, is_unreachable
from engine.platform.sealing import Sealer
from engine.queue.bounced import LateFailure, deliveries_by_id, mark_failed_late
from inbound.registration import RegistrationDesk
from inbound.replies import ReplyDesk
from inbound.report_desk import ReportDesk

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
#: Reasons that never say a mail failed to arrive.
NOT_FAILURES = frozenset({"delivered", "vacation", FEEDBACK})

OK_RCPT = "250 2.1.5 OK"
RELAY_DENIED = (
    "550 5.7.1 <{}>: relay access denied (this server takes only bounces and its own addresses)"
)
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
TRY_LATER = "451 4.3.0 Temporary failure storing the mail, try again later"


def service_key(address: str) -> str:
    """The address with its domain in lower case, as service addresses are compared."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    return f"{local}@{domain.lower()}" if at else address


def is_final_failure(verdict: Verdict) -> bool:
    return (
        verdict.reason not in NOT_FAILURES
        and verdict.source != "autoreply"
        and verdict.action != "delayed"
    )


class InboundHandler:
    """aiosmtpd handler hooks for bounces and service mail."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, verp_secret: bytes, clock: Clock
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.secret = verp_secret
        self.clock = clock
        # Kept mails, the recipients bounces name and the suppression list are sealed.
        self.sealer = Sealer.from_key(settings.people.key, settings.people.key_file)
        self.service = {service_key(a) for a in settings.inbound.service_addresses}
        self.desk = RegistrationDesk(settings, pool, verp_secret, clock)
        self.replies = ReplyDesk(settings, pool, verp_secret, clock, self.desk.people)
        self.reports = ReportDesk(settings, pool, verp_secret, clock)
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.outage = OutageLog(log, "inbound")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RCPTS
        delivery_id = delivery_id_of(self.secret, address)
        if (
            delivery_id is None
            and service_key(address) not in self.service
            and self.desk.match(address) is None
            and not self.reports.match(address)
            and unsubscribe_id_of(self.secret, address) is None
        ):
            # The domain only: the address may be a person's.
            log.info("refused RCPT to @%s from %r", address.rpartition("@")[2], session.peer)
            return RELAY_DENIED.format(address)
        if any(self._same_recipient(address, delivery_id, r) for r in envelope.rcpt_tos):
            # Accepted, but kept once: the mail is stored once per recipient, not per RCPT.
            return OK_RCPT
        envelope.rcpt_tos.append(address)
        return OK_RCPT

    def _same_recipient(self, address: str, delivery_id: int | None, other: str) -> bool:
        if delivery_id is not None:
            return delivery_id_of(self.secret, other) == delivery_id
        return address.strip().strip("<>").lower() == other.strip().strip("<>").lower()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        self.idle.clear()
        try:
            raw = envelope.original_content or b""
            if isinstance(envelope.content, bytes) and not raw:
                raw = envelope.content
            # aiosmtpd reports the null reverse-path of a DSN as "<>"; it is stored as "".
            mail_from = str(envelope.mail_from or "").strip("<>")
            reply = await self._take(mail_from, list(envelope.rcpt_tos), raw)
            self.outage.succeeded()
            return reply
        except Exception as exc:
            if is_unreachable(exc):
                # Said once per outage; the sender keeps the mail and tries again.
                self.outage.failed(exc)
                return TRY_LATER
            if isinstance(exc, asyncpg.PostgresError):
                log.warning("cannot store mail from %r: %s", session.peer, exc)
                return TRY_LATER
            # A bug must not lose the bounce: the sender keeps it and tries again.
            log.exception("unexpected error taking mail from %r", session.peer)
            return TRY_LATER
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def _take(self, mail_from: str, rcpts: Sequence[str], raw: bytes) -> str:
        # One entry per delivery even if an envelope named it twice (handle_RCPT keeps it once).
        verp: list[tuple[str, int]] = []
        service: list[str] = []
        entries: dict[str | None, None] = {}
        leaving: dict[int, None] = {}
        to_reports = False
        for r in rcpts:
            d = delivery_id_of(self.secret, r)
            entry = self.desk.match(r) if d is None else None
            gone = unsubscribe_id_of(self.secret, r) if d is None else None
            if d is None and self.reports.match(r):
                to_reports = True
            elif entry is not None:
                entries[entry.school] = None
            elif gone is not None:
                leaving[gone] = None
            elif d is None:
                service.append(r)
            elif all(d != seen for _, seen in verp):
                verp.append((r, d))
        for school in entries:
            await self.desk.answer(mail_from, school)
        for delivery_id in leaving:
            await self.desk.unsubscribe(delivery_id)
        if to_reports:
            await self.reports.answer(mail_from)
        if service and await self.replies.take(mail_from, raw):
            # A guardian's reply to a broadcast: kept sealed with it, not as service mail.
            service = []
        report = await self._parse(raw) if verp else BounceReport(kind="unknown")
        now = self.clock.now()
        if not service and not verp:
            return "250 2.0.0 OK"
        async with self.pool.acquire() as conn, conn.transaction():
            if service:
                await insert_messages(conn, self.sealer, now, mail_from, raw, service)
            if verp:
                await self._record_bounce(conn, mail_from, raw, report, verp)
        if verp and not report.verdicts:
            return "250 2.0.0 OK: stored unclassified for a person to read"
        return "250 2.0.0 OK"

    async def _parse(self, raw: bytes) -> BounceReport:
        try:
            # Pure but CPU-bound on big mails: off the event loop.
            return await asyncio.to_thread(parse_bounce, raw)
        except Exception:
            log.exception("parse_bounce failed; storing the mail unclassified")
            return BounceReport(kind="unknown")

    async def _record_bounce(
        self,
        conn: asyncpg.Connection,
        mail_from: str,
        raw: bytes,
        report: BounceReport,
        verp: Sequence[tuple[str, int]],
    ) -> None:
        now = self.clock.now()
        found = await deliveries_by_id(conn, self.sealer, [d for _, d in verp])
        rows: list[BounceRow] = []
        late: list[LateFailure] = []
        failed: list[FailedVerdict] = []
        for rcpt, delivery_id in verp:
            if not report.verdicts:
                rows.append(
                    BounceRow(rcpt, delivery_id, report.kind, None, None, None, False, None,
                              None, None, None, False)
                )
                continue
            for v in report.verdicts:
                rows.append(
                    BounceRow(rcpt, delivery_id, report.kind, v.recipient, v.reason, v.category,
                              v.hard, v.reply_code, v.status, v.action, v.diagnostic, True)
                )
            delivery = found.get(delivery_id)
            if delivery is None:
                log.info("bounce for delivery %d, which no longer exists", delivery_id)
                continue
            verdict = _verdict_for(delivery.recipient, report.verdicts)
            if verdict is None:
                continue
            if is_final_failure(verdict):
                late.append(
                    LateFailure(
                        delivery_id, verdict.reason, verdict.category, verdict.reply_code,
                        verdict.status, f"エラーメール受信: {verdict.diagnostic}".strip(),
                    )
                )
            if is_final_failure(verdict) or verdict.reason == FEEDBACK:
                failed.append(
                    FailedVerdict(delivery.recipient, delivery_id, verdict.reason,
                                  verdict.category, verdict.hard)
                )
        await insert_bounces(conn, self.sealer, now, mail_from, raw, rows)
        await mark_failed_late(conn, now, late)
        suppressions = Suppressions(conn, self.sealer, self.settings.suppression, self.clock)
        added = await suppressions.record_verdicts(failed, source="bounce")
        if added:
            # Never an address in full in the log: the delivery ids say whose they are.
            new = {a.lower() for a in added}
            ids = sorted(
                {f.delivery_id for f in failed if f.address.lower() in new and f.delivery_id}
            )
            log.info("suppressed after a bounce: %d address(es), deliveries %s", len(added),
                     ", ".join(map(str, ids)))


def _verdict_for(recipient: str, verdicts: Sequence[Verdict]) -> Verdict | None:
    """The verdict about this delivery's recipient: a VERP address names one recipient, so a
    report that names others (forwarding, aliases) still speaks of ours. A failure is
    preferred over a delay or a delivery report for the same recipient."""
    wanted = recipient.lower()
    mine = [v for v in verdicts if v.recipient and v.recipient.lower() == wanted] or list(verdicts)
    if not mine:
        return None
    return next((v for v in mine if is_final_failure(v)), None) or next(
        (v for v in mine if v.reason == FEEDBACK), mine[0]
    )
