"""The SMTP client side: aiosmtplib sessions, one transaction per recipient.

The runner opens a session for a connection slot the shaper granted (bound to the grant's
source address, with its HELO name) and sends message after message on it. A successful
transaction leaves the connection ready for the next ``MAIL FROM`` (RFC 5321 §4.1.4), so no
round trip is spent on RSET then; after a refused command the transaction is reset with RSET.
Every step has a timeout.

STARTTLS is used when the server offers it (opportunistic, no certificate check, as between
MTAs). Like Postfix's ``may`` level, a receiver that answers STARTTLS with an error (454) gets
the mail in plain text on the same connection, and one whose TLS handshake fails gets it over a
new plain connection. Destinations that ``delivery.tls_required`` names (by MX host, or the
whole site the lane passes as ``tls_site``; ``engine/tls_policy``) never get plain text: the
result is a deferral answered by "STARTTLS" that says why. Each result says whether the mail
went over TLS.

PIPELINING (RFC 2920): when the receiver offers it, MAIL, RCPT and DATA go in one write
(``engine/delivery/_pipelining.py``), two round trips per mail instead of four;
``delivery.pipelining = false`` turns that off.

SIZE (RFC 1870): when the receiver announces a maximum, the mail's size goes with MAIL FROM,
and a mail over the maximum is not sent at all; it fails with status 5.3.4 ("message too big
for the system"), a fault of the mail, never of the guardian's address.

``Transport`` is the seam: ``open`` gives a ``Session`` (or the ``SendResult`` saying why no
server answered); tests may pass any object with that shape.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from engine.delivery._routing import Destination
from engine.delivery._tls_policy import TlsPolicy
from engine.platform.config import DeliverySettings
from engine.queue.models import Outcome

log = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b\s*")


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class SourceAddress:
    """Where outgoing connections come from: a local address to bind and the HELO name."""

    address: str | None = None
    helo: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    code: int | None
    status: str | None
    text: str
    # The SMTP step that answered: CONNECT, EHLO, MAIL, RCPT, DATA.
    command: str
    host: str | None
    # Whether the connection was encrypted (STARTTLS); None when no session was opened.
    tls: bool | None = None


class Transport(Protocol):
    async def open(
        self,
        destinations: Sequence[Destination],
        source: SourceAddress | None = None,
        *,
        tls_site: str | None = None,
    ) -> Session | SendResult: ...


def outcome_for_code(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.DELIVERED
    if 500 <= code < 600:
        return Outcome.FAILED
    return Outcome.DEFERRED


def split_enhanced(text: str) -> tuple[str | None, str]:
    """Split "5.1.1 User unknown" into ("5.1.1", "User unknown")."""
    m = _ENHANCED.match(text)
    if m:
        return m.group(1), text[m.end():]
    return None, text


class Session(Protocol):
    """One open SMTP connection, used for one message after another."""

    @property
    def usable(self) -> bool: ...

    async def send(self, envelope: Envelope) -> SendResult: ...

    async def close(self) -> None: ...


class _Refused(Exception):
    """A reply that ends the transaction; carries the command it answered."""

    def __init__(self, command: str, code: int, message: str) -> None:
        super().__init__(message)
        self.command = command
        self.code = code
        self.message = message


class SmtpSession:
    """An aiosmtplib connection that sends one transaction per message."""

    def __init__(
        self, smtp: aiosmtplib.SMTP, host: str, settings: DeliverySettings, tls: bool = False
    ) -> None:
        self._smtp = smtp
        self._host = host
        self._settings = settings
        self._broken = False
        self._tls = tls
        self._max_size = _announced_size(smtp)

    @property
    def tls(self) -> bool:
        """Whether this connection is encrypted."""
        return self._tls

    @property
    def max_size(self) -> int:
        """The receiver's announced maximum message size in bytes; 0: none announced."""
        return self._max_size

    @property
    def usable(self) -> bool:
        return not self._broken and self._smtp.is_connected

    async def send(self, envelope: Envelope) -> SendResult:
        host = self._host
        if not (envelope.sender.isascii() and envelope.recipient.isascii()):
            # Addresses are checked at enqueue; this guards rows written by other means.
            return SendResult(
                Outcome.FAILED, None, None,
                "the address is not ASCII and the server was not asked for SMTPUTF8",
                "RCPT", host, self._tls,
            )
        size = len(envelope.data)
        if self._max_size and size > self._max_size:
            # The receiver said it will refuse this: sending it would only waste the
            # connection, and its 552 would read like the guardian's mailbox being full.
            return SendResult(
                Outcome.FAILED, None, "5.3.4",
                f"message too big: {size} bytes, the receiver accepts at most "
                f"{self._max_size} (SIZE); not sent",
                "MAIL", host, self._tls,
            )
        try:
            result = await self._transaction(envelope, size)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            self._broken = True
            return SendResult(
                Outcome.DEFERRED, None, None, f"timed out: {_describe(exc)}", "DATA", host,
                self._tls,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._broken = True
            return SendResult(
                Outcome.DEFERRED, None, None, _describe(exc), "DATA", host, self._tls
            )
        if result.code == 421:
            self._broken = True  # the server is closing the connection
        return result

    async def _transaction(self, envelope: Envelope, size: int) -> SendResult:
        smtp = self._smtp
        try:
            # MAIL and RCPT go through execute_command: the envelope addresses were checked and
            # written as SMTP paths when the broadcast was enqueued, and aiosmtplib's own mail()
            # and rcpt() would parse them again with email.utils on every message (a fifth of
            # the runner's time in profiles).
            sender = envelope.sender.encode("ascii")
            recipient = envelope.recipient.encode("ascii")
            mail_from = b"FROM:<" + sender + b">"
            if smtp.supports_extension("size"):
                mail_from += b" SIZE=%d" % size
            reply = await smtp.execute_command(b"MAIL", mail_from)
            if reply.code != 250:
                raise _Refused("MAIL", reply.code, reply.message)
            reply = await smtp.execute_command(b"RCPT", b"TO:<" + recipient + b">")
            if reply.code not in (250, 251):
                raise _Refused("RCPT", reply.code, reply.message)
            try:
                response = await smtp.data(envelope.data, timeout=self._settings.data_timeout)
            except aiosmtplib.SMTPResponseException as exc:
                raise _Refused("DATA", exc.code, exc.message) from None
        except _Refused as refused:
            return await self._refused(refused.command, refused.code, refused.message)
        status, text = split_enhanced(response.message)
        return SendResult(
            outcome_for_code(response.code), response.code, status, text, "DATA", self._host,
            self._tls,
        )

    async def _refused(self, command: str, code: int, message: str) -> SendResult:
        """The result of a transaction the server refused at `command`; resets it."""
        status, text = split_enhanced(message)
        if code == 552 and command == "MAIL":
            # RFC 1870 §6.1: 552 to MAIL FROM ... SIZE= is "over the fixed maximum": the
            # mail's fault (5.3.4), not a full mailbox.
            status = "5.3.4"
        await self._reset()
        return SendResult(
            outcome_for_code(code), code, status, text, command, self._host, self._tls
        )

    async def _reset(self) -> None:
        try:
            await self._smtp.rset(timeout=10)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._broken = True

    async def close(self) -> None:
        """QUIT with a short timeout; a connection that does not answer is just closed."""
        smtp = self._smtp
        if not smtp.is_connected:
            return
        try:
            await smtp.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()


class SmtpTransport:
    """Opens SMTP sessions: the destinations in order, bound to a source address."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._tls_hosts = TlsPolicy.hosts_of(settings.tls_required)

    async def open(
        self,
        destinations: Sequence[Destination],
        source: SourceAddress | None = None,
        *,
        tls_site: str | None = None,
    ) -> Session | SendResult:
        """A session with the first destination that answers, or why none did.

        Only a failure to get a session moves on to the next MX: once a transaction has
        begun, the mail may have been taken, and trying elsewhere would send it twice.
        `tls_site`: the recipient's site when ``delivery.tls_required`` names it; then no
        destination gets plain text.
        """
        source = source or SourceAddress()
        last: SendResult | None = None
        for dest in destinations:
            required = self._tls_requirement(dest, tls_site)
            use_tls = self._settings.starttls != "off" or required is not None
            try:
                try:
                    smtp, tls = await self._connect(dest, source, use_tls, required)
                except _HandshakeFailed as failed:
                    if required is not None:
                        raise _TlsUnavailable(
                            None, f"the TLS handshake with {dest.host} failed: {failed}",
                            required,
                        ) from None
                    # Postfix's "may": a failed handshake is retried in plain text at once.
                    log.info("TLS handshake with %s failed (%s); sending in plain text",
                             dest, failed)
                    smtp, tls = await self._connect(dest, source, False, None)
            except _TlsUnavailable as exc:
                last = SendResult(Outcome.DEFERRED, exc.code, None, str(exc), "STARTTLS",
                                  str(dest), False)
                continue
            except aiosmtplib.SMTPConnectResponseError as exc:
                status, text = split_enhanced(exc.message)
                last = SendResult(Outcome.DEFERRED, exc.code, status, text, "CONNECT", str(dest))
                continue
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                last = SendResult(
                    Outcome.DEFERRED, None, None, _describe(exc), "CONNECT", str(dest)
                )
                continue
            if self._settings.pipelining and smtp.supports_extension("pipelining"):
                from engine.delivery._pipelining import PipelinedSession

                return PipelinedSession(smtp, str(dest), self._settings, tls)
            return SmtpSession(smtp, str(dest), self._settings, tls)
        assert last is not None, "no destinations"
        return last

    def tls_required(self, dest: Destination, tls_site: str | None = None) -> bool:
        """Whether `dest` never gets plain text: its site (`tls_site`) or its host is listed
        in delivery.tls_required."""
        return self._tls_requirement(dest, tls_site) is not None

    def _tls_requirement(self, dest: Destination, tls_site: str | None) -> str | None:
        """What makes TLS compulsory for `dest`, said for the operator; None: nothing."""
        if tls_site is not None:
            return f"site {tls_site}"
        entry = self._tls_hosts.host_requiring(dest.host)
        return None if entry is None else f"{dest.host} (matches {entry})"

    async def _connect(
        self, dest: Destination, source: SourceAddress, use_tls: bool, required: str | None
    ) -> tuple[aiosmtplib.SMTP, bool]:
        """A greeted connection, upgraded with STARTTLS when offered and wanted."""
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=dest.host,
            port=dest.port,
            local_hostname=source.helo or s.helo,
            source_address=(source.address, 0) if source.address else None,
            timeout=s.command_timeout,
            # STARTTLS is driven below, so that its failures can fall back to plain text.
            start_tls=False,
            validate_certs=False,
        )
        await smtp.connect(timeout=s.connect_timeout)
        try:
            await _greet(smtp)
            if not use_tls:
                return smtp, False
            if not smtp.supports_extension("starttls"):
                if required is not None:
                    raise _TlsUnavailable(
                        None, f"{dest.host} does not offer STARTTLS", required
                    )
                return smtp, False
            try:
                await smtp.starttls()
            except aiosmtplib.SMTPResponseException as exc:
                if required is not None:
                    raise _TlsUnavailable(
                        exc.code, f"{dest.host} answered STARTTLS with {exc.code} {exc.message}",
                        required,
                    ) from None
                # 454 "TLS not available": the session goes on unencrypted, as Postfix does.
                return smtp, False
            except (ssl.SSLError, aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise _HandshakeFailed(_describe(exc)) from None
            await _greet(smtp)  # RFC 3207 §4.2: forget what was said before TLS, ask again
            return smtp, True
        except BaseException:
            smtp.close()
            raise


class _HandshakeFailed(Exception):
    """STARTTLS was accepted but the TLS handshake did not complete."""


class _TlsUnavailable(Exception):
    """TLS is required for the destination and cannot be had; the text says so in Japanese
    and English, with what requires it (`required`) and what happened."""

    def __init__(self, code: int | None, what: str, required: str) -> None:
        super().__init__(
            f"暗号化 (TLS) が必須の宛先のため平文では送らず再送待ち / TLS is required for "
            f"{required} (delivery.tls_required) but {what}; not sent in plain text, retrying"
        )
        self.code = code


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()


def _announced_size(smtp: aiosmtplib.SMTP) -> int:
    """The SIZE the server announced in its EHLO reply (RFC 1870); 0 for none or no limit."""
    value = smtp.esmtp_extensions.get("size", "")
    return int(value) if value.strip().isdigit() else 0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
