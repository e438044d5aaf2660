"""One SMTP connection sending one transaction per recipient (aiosmtplib).

A successful transaction leaves the connection ready for the next ``MAIL FROM`` (RFC 5321
§4.1.4), so no round trip is spent on RSET then; after a refused command the transaction is
reset with RSET. Every step has a timeout, and a whole attempt may be given a deadline.

SIZE (RFC 1870): when the receiver announces a maximum, the mail's size goes with MAIL FROM,
and a mail over the maximum is not sent at all; it fails with status 5.3.4 ("message too big
for the system"), a fault of the mail, never of the guardian's address.
"""

from __future__ import annotations

import asyncio

import aiosmtplib

from engine.delivery._transport import (
    Envelope,
    SendResult,
    describe_error,
    outcome_for_code,
    split_enhanced,
)
from engine.platform.config import DeliverySettings
from engine.queue.models import Outcome


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

    async def send(self, envelope: Envelope, deadline: float | None = None) -> SendResult:
        """One transaction; `deadline` (event-loop time): the attempt ends by then, as a
        deferral that says it timed out, and the connection is not used again."""
        host = self._host
        if not (envelope.sender.isascii() and envelope.recipient.isascii()):
            # Addresses are checked at enqueue; this guards rows written by other means.
            # RFC 6531 section 3.7.4.1: 5.6.7, a non-ASCII address the path cannot carry.
            return SendResult(
                Outcome.FAILED, None, "5.6.7",
                "the address is not ASCII and the server was not asked for SMTPUTF8; not sent",
                "RCPT", host, self._tls, local=True,
            )
        size = len(envelope.data)
        if self._max_size and size > self._max_size:
            # The receiver said it will refuse this: sending it would only waste the
            # connection, and its 552 would read like the guardian's mailbox being full.
            return SendResult(
                Outcome.FAILED, None, "5.3.4",
                f"message too big: {size} bytes, the receiver accepts at most "
                f"{self._max_size} (SIZE); not sent",
                "MAIL", host, self._tls, local=True,
            )
        try:
            result = await self._transaction(envelope, size, deadline)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            self._broken = True
            return SendResult(
                Outcome.DEFERRED, None, None, f"timed out: {describe_error(exc)}", "DATA", host,
                self._tls,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._broken = True
            return SendResult(
                Outcome.DEFERRED, None, None, describe_error(exc), "DATA", host, self._tls
            )
        if result.code == 421:
            self._broken = True  # the server is closing the connection
        return result

    async def _transaction(
        self, envelope: Envelope, size: int, deadline: float | None = None
    ) -> SendResult:
        async with asyncio.timeout_at(deadline):
            return await self._steps(envelope, size)

    async def _steps(self, envelope: Envelope, size: int) -> SendResult:
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


def _announced_size(smtp: aiosmtplib.SMTP) -> int:
    """The SIZE the server announced in its EHLO reply (RFC 1870); 0 for none or no limit."""
    value = smtp.esmtp_extensions.get("size", "")
    return int(value) if value.strip().isdigit() else 0
