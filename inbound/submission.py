"""SMTP submission for applications: a mail to a group address becomes a broadcast.

``mamoru serve`` runs it on ``[submission] listen`` (587 in production) beside the inbound
server. The conversation:

1. EHLO, STARTTLS (``submission.tls_cert``/``tls_key``); AUTH PLAIN or LOGIN is offered only
   after it and refused before it with ``538 5.7.11`` (``submission.allow_plain_auth`` lifts
   that for development on a loopback address only). The password is an API key (``mak_...``,
   ``engine/staff/apikeys.py``); the user name is not used. The key has the rights of its
   school or of the board, as over HTTP.
2. MAIL: more than ``submission.rate_per_minute`` mails of one key in a minute (counted in the
   database for every serve, ``engine.staff.submission.SubmitRate``) get ``451 4.7.0`` (try
   again later). SIZE is advertised; a larger mail gets ``552``.
3. RCPT: a group address (``engine/staff/submission.py`` defines them); an unknown one gets
   ``550 5.1.1``, another school's ``550 5.7.1``, before any content is sent.
4. DATA: subject, text body (``text/plain``, or the plain part of ``multipart/alternative``)
   and From become a broadcast; ``X-Mamoru-Category`` (緊急, emergency, ...),
   ``X-Mamoru-Priority`` and ``X-Mamoru-Audience`` are read. HTML-only mail and attachments are
   refused with ``554 5.6.1`` (files go by HTTP). ``250`` names the broadcast.

Replies say it in Japanese, then in English after " / ", in UTF-8 (SMTPUTF8 is offered). The
module writes no SQL: everything it decides goes through ``engine.staff``.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from engine.delivery.preflight import server_tls_context
from engine.people import People
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings, parse_host_port
from engine.platform.errors import ConfigError, InputError
from engine.platform.outage import DATABASE_ERRORS, OutageLog
from engine.queue import Queue
from engine.staff import apikeys
from engine.staff.models import AuthError, Principal, RightsError
from engine.staff.store import Staff
from engine.staff.submission import (
    Submission,
    SubmitRate,
    UnknownGroupAddress,
    check_recipient,
    submit,
)

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
AUTH_OK = "235 2.7.0 認証しました / authentication successful"
AUTH_BAD = "535 5.7.8 API キーが違うか無効です / unknown or disabled API key"
AUTH_LATER = (
    "454 4.7.0 認証を確認できません。後で送り直してください / temporary authentication failure"
)
TRY_LATER = (
    "451 4.3.0 一時的に受け付けられません。後で送り直してください / temporary failure, try again "
    "later"
)
TOO_MANY_RCPTS = "452 4.5.3 宛先が多すぎます / too many recipients"
NO_TEXT = (
    "554 5.6.1 本文はテキスト (text/plain) だけにしてください。HTML だけのメールと添付ファイルは"
    "受け付けません (添付は HTTP で) / only a text/plain body is taken: no HTML-only mail, no "
    "attachments (send files over HTTP)"
)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


class MailRefused(InputError):
    """The mail's form is not taken; ``reply`` is the whole SMTP reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def read_mail(raw: bytes, envelope_sender: str) -> tuple[str, str, str, dict[str, str]]:
    """Sender, subject, text body and the X-Mamoru-* / Message-ID fields of a mail;
    ``MailRefused`` when there is no text body or there are attachments."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    part: Any = msg
    if msg.is_multipart():
        if msg.get_content_type() != "multipart/alternative":
            raise MailRefused(NO_TEXT)
        part = msg.get_body(preferencelist=("plain",))
    if part is None or part.get_content_type() != "text/plain" or part.is_attachment():
        raise MailRefused(NO_TEXT)
    try:
        body = str(part.get_content())
    except (LookupError, UnicodeError):
        raise MailRefused(
            "554 5.6.0 本文の文字コードを読めません / the body's charset cannot be read"
        ) from None
    sender = envelope_sender
    from_field: Any = msg["from"]
    found = tuple(getattr(from_field, "addresses", None) or ())
    if found:
        sender = found[0].addr_spec or envelope_sender
    fields = {
        name: _one_line(str(msg[name] or ""))
        for name in ("X-Mamoru-Category", "X-Mamoru-Priority", "X-Mamoru-Audience", "Message-ID")
    }
    # The parser unfolds the subject; what is left is checked by sending (one line, length).
    subject = str(msg["subject"] or "").strip()
    return sender, subject, body.replace("\r\n", "\n"), fields


class _SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP with AUTH checked against the API keys (asynchronously)."""

    def __init__(self, server: SubmissionServer, handler: SubmissionHandler, **kw: Any) -> None:
        super().__init__(handler, **kw)
        self._submission = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._submission.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._submission.open.discard(self)
        super().connection_lost(error)

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # Only reads the credentials; the key is checked in _check_key, which may await.
        return AuthResult(success=True, auth_data=auth_data)

    async def _check_key(self, read: AuthResult) -> AuthResult:
        if not read.success or not isinstance(read.auth_data, LoginPassword):
            return read
        peer = self.session.peer if self.session is not None else None
        address = str(peer[0]) if isinstance(peer, tuple) else ""
        key = read.auth_data.password.decode("utf-8", "replace").strip()
        try:
            principal = await self._submission.principal_of(key, address)
        except AuthError:
            log.info("submission: AUTH refused from %s", address)
            return AuthResult(success=False, handled=False, message=AUTH_BAD)
        except DATABASE_ERRORS as exc:
            self._submission.outage.failed(exc)
            return AuthResult(success=False, handled=False, message=AUTH_LATER)
        return AuthResult(success=True, auth_data=principal, message=AUTH_OK)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check_key(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check_key(await super().auth_LOGIN(_, args))


def _principal(session: Session) -> Principal:
    actor = session.auth_data
    assert isinstance(actor, Principal), "auth_required keeps unauthenticated sessions out"
    return actor


class SubmissionHandler:
    """The hooks: rate at MAIL, group address and rights at RCPT, the broadcast at DATA."""

    def __init__(self, server: SubmissionServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        actor = _principal(session)
        try:
            allowed = actor.id is None or await self.server.rate.allows(actor.id)
        except DATABASE_ERRORS as exc:
            self.server.outage.failed(exc)
            return TRY_LATER
        if not allowed:
            return (
                f"451 4.7.0 このキーからの送信が多すぎます (1 分に "
                f"{self.server.rate.per_minute} 通まで)。後で送り直してください / too many "
                "mails with this API key, try again in a minute"
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RCPTS
        try:
            await self.server.check_recipient(_principal(session), address)
        except UnknownGroupAddress as exc:
            return f"550 5.1.1 {_one_line(str(exc))}"
        except RightsError:
            return (
                f"550 5.7.1 このキーでは <{address}> に送れません / this API key may not "
                f"send to <{address}>"
            )
        except InputError as exc:
            return f"550 5.1.1 {_one_line(str(exc))}"
        except DATABASE_ERRORS as exc:
            self.server.outage.failed(exc)
            return TRY_LATER
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        actor = _principal(session)
        raw = envelope.original_content or b""
        try:
            sender, subject, body, fields = read_mail(raw, envelope.mail_from or "")
        except MailRefused as exc:
            return exc.reply
        mail = Submission(
            tuple(envelope.rcpt_tos), sender, subject, body, fields["X-Mamoru-Audience"],
            fields["X-Mamoru-Category"], fields["X-Mamoru-Priority"], fields["Message-ID"],
        )
        try:
            made = await self.server.submit(actor, mail)
        except UnknownGroupAddress as exc:
            return f"550 5.1.1 {_one_line(str(exc))}"
        except (RightsError, AuthError) as exc:
            return f"550 5.7.1 {_one_line(str(exc))}"
        except InputError as exc:
            return f"554 5.6.0 {_one_line(str(exc))}"
        except DATABASE_ERRORS as exc:
            self.server.outage.failed(exc)
            return TRY_LATER
        self.server.outage.succeeded()
        if actor.id is not None and not made.replayed:
            try:
                await self.server.rate.count(actor.id)
            except DATABASE_ERRORS as exc:
                # The broadcast is stored: say so; only this mail's count is lost.
                self.server.outage.failed(exc)
        again = " (送信済みの再送 / a retry: sent before)" if made.replayed else ""
        log.info("submission: broadcast %d from %s%s", made.broadcast_id, actor.name, again)
        return (
            f"250 2.0.0 配信 {made.broadcast_id} を登録しました ({made.recipients} 件){again} / "
            f"broadcast {made.broadcast_id} queued for {made.recipients} recipient(s)"
        )


class _NoPlainAuthNagging(logging.Filter):
    """aiosmtpd logs "auth_required == True but auth_require_tls == False" per connection;
    with allow_plain_auth that is intended, and said once at start instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "auth_require_tls == False" not in str(record.msg)


class SubmissionServer:
    """The submission listener; ``start``/``stop`` in the caller's loop, like InboundServer."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, clock: Clock | None = None):
        cfg = settings.submission
        if not cfg.listen:
            raise ConfigError("submission.listen is empty: the submission server is disabled")
        self.settings = settings
        self.pool = pool
        self.clock = clock or SystemClock()
        self.host, self.port = parse_host_port("submission.listen", cfg.listen, 587)
        self.rate = SubmitRate(pool, self.clock, cfg.rate_per_minute)
        self.outage = OutageLog(log, "submission")
        self._tls = server_tls_context("submission", cfg.tls_cert, cfg.tls_key)
        self._server: asyncio.Server | None = None
        self._staff: Staff | None = None
        self._people: People | None = None
        self.open: set[_SubmissionSMTP] = set()

    def _stores(self) -> tuple[Staff, People]:
        assert self._staff is not None and self._people is not None, "start() first"
        return self._staff, self._people

    async def principal_of(self, key: str, address: str) -> Principal:
        staff, _ = self._stores()
        if not key.startswith(apikeys.KEY_PREFIX):
            raise AuthError("not an API key")
        return await apikeys.principal_of_key(staff, key, address)

    async def check_recipient(self, actor: Principal, address: str) -> None:
        staff, people = self._stores()
        await check_recipient(staff, people, actor, address, self.settings.submission.domain)

    async def submit(self, actor: Principal, mail: Submission) -> Any:
        staff, people = self._stores()
        return await submit(
            staff, people, Queue(self.pool, people.sealer), actor, mail,
            self.settings.submission.domain,
            self.settings.queue.max_age,
        )

    async def start(self) -> None:
        cfg = self.settings.submission
        self._people = await People.open(self.pool, self.settings.people, self.clock)
        self._staff = await Staff.open(self.pool, self._people.sealer, self.settings, self.clock)
        loop = asyncio.get_running_loop()
        handler = SubmissionHandler(self)

        if cfg.allow_plain_auth:
            aiosmtpd_log = logging.getLogger("mail.log")
            if not any(isinstance(f, _NoPlainAuthNagging) for f in aiosmtpd_log.filters):
                aiosmtpd_log.addFilter(_NoPlainAuthNagging())
            log.warning("submission: AUTH without TLS (submission.allow_plain_auth): "
                        "development only")

        def protocol() -> _SubmissionSMTP:
            with warnings.catch_warnings():
                # aiosmtpd warns about AUTH without TLS; config.py allows it on loopback only.
                warnings.simplefilter("ignore", UserWarning)
                return _make()

        def _make() -> _SubmissionSMTP:
            return _SubmissionSMTP(
                self, handler,
                data_size_limit=cfg.max_message_size,
                hostname=cfg.hostname,
                ident="mamoru submission",
                enable_SMTPUTF8=True,
                tls_context=self._tls,
                auth_required=True,
                auth_require_tls=not cfg.allow_plain_auth,
                loop=loop,
            )

        try:
            self._server = await loop.create_server(protocol, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                f"submission.listen {cfg.listen}: cannot listen ({exc.strerror}); "
                "choose a free address and port"
            ) from None
        log.info("SMTP submission listening on %s:%d", self.host, self.port)

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for protocol in list(self.open):
            if protocol.transport is not None:
                protocol.transport.close()
        await self._server.wait_closed()
        self._server = None
