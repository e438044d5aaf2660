"""Pipelined SMTP transactions (RFC 2920) on a connection that aiosmtplib opened.

aiosmtplib sends one command and waits for its reply before the next (and drops replies that
arrive while none is awaited), so every mail costs four round trips and four writes: MAIL,
RCPT, DATA, the content. When the receiver announces PIPELINING, ``PipelinedSession`` takes the
connection over after the greeting, EHLO and STARTTLS (aiosmtplib did those) and sends MAIL,
RCPT and DATA in one write, then the content: two round trips per mail. Everything else (the
size check, the reading of replies into results, RSET after a refusal) is the same as in
``engine.delivery._smtp_session.SmtpSession``, which it extends.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import cast

import aiosmtplib

from engine.delivery._smtp_session import SmtpSession
from engine.delivery._transport import Envelope, SendResult, outcome_for_code, split_enhanced
from engine.platform.config import DeliverySettings

__all__ = ["PipelinedSession"]

_MAX_REPLY_BYTES = 64 * 1024
_LINE_START_DOT = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class _Replies(asyncio.Protocol):
    """Collects complete SMTP replies as they arrive, however they are split or joined.

    Waits are bounded by a deadline, watched by one timer per connection rather than a timer
    per wait: the timer is set for the current deadline only when none is set or the deadline
    comes earlier, and when it fires before the current deadline (later waits moved it on) it
    is set again for it. A mail's waits then cost a float comparison each, not a timer handle
    scheduled and cancelled (three per mail with a timeout per wait).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._ready: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self._deadline = 0.0  # loop time by which the current wait ends
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.lost is not None:
            return  # out of step or gone: nothing after this can be paired with a command
        if not self._buffer and data.endswith(b"\n"):
            # Whole lines, nothing left over (the usual case: a mail's replies arrive in one
            # segment): split at once instead of through the buffer.
            for line in data[:-1].split(b"\n"):
                self._line(line.rstrip(b"\r"))
        else:
            self._buffer += data
            while (end := self._buffer.find(b"\n")) >= 0:
                line = bytes(self._buffer[:end]).rstrip(b"\r")
                del self._buffer[: end + 1]
                self._line(line)
            if len(self._buffer) > _MAX_REPLY_BYTES:
                self.connection_lost(ConnectionError("reply line too long"))
        self._wake()

    def _line(self, line: bytes) -> None:
        """One line of a reply: "250-..." continues it, "250 ok" or "250" ends it."""
        if line[3:4] == b"-":
            self._lines.append(line)
            return
        if self._lines:
            lines, self._lines = self._lines, []
            lines.append(line)
        else:
            lines = [line]
        code_text = line[:3]
        if not code_text.isdigit():
            self.lost = ConnectionError(f"malformed SMTP reply {line[:80]!r}")
            return
        if len(lines) == 1:
            text = line[4:].decode("utf-8", "surrogateescape")
        else:
            text = "\n".join(part[4:].decode("utf-8", "surrogateescape") for part in lines)
        self._ready.append((int(code_text), text))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = exc or ConnectionError("the server closed the connection")
        self._wake()

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _expire(self) -> None:
        """The connection's timer: fails the wait once its deadline has passed, else is set
        again for it."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing waits; the next wait sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._expire)

    def close(self) -> None:
        """Stop the connection's timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def next(self, within: float, deadline: float | None = None) -> tuple[int, str]:
        """The next reply; TimeoutError, or the connection's error once it is gone."""
        await self.wait_for(1, within, deadline)
        return self._ready.popleft()

    async def wait_for(self, count: int, within: float, deadline: float | None = None) -> None:
        """Until `count` replies are in (TimeoutError after `within` seconds, or at the
        loop-time `deadline` if that comes first), or the connection's error once it is
        gone. Replies that are already in cost no waiting at all."""
        if len(self._ready) >= count:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        if deadline is not None and deadline < until:
            until = deadline
        self._deadline = until
        timer = self._timer
        if timer is None or timer.when() > until:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(until, self._expire)
        while len(self._ready) < count:
            if self.lost is not None:
                raise self.lost
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take(self, count: int) -> list[tuple[int, str]]:
        """Up to `count` replies that are in, oldest first."""
        return [self._ready.popleft() for _ in range(min(count, len(self._ready)))]


class PipelinedSession(SmtpSession):
    """An SMTP connection that sends MAIL, RCPT and DATA together (RFC 2920)."""

    def __init__(
        self, smtp: aiosmtplib.SMTP, host: str, settings: DeliverySettings, tls: bool = False
    ) -> None:
        super().__init__(smtp, host, settings, tls)
        self._declare_size = smtp.supports_extension("size")
        transport = smtp.transport
        assert transport is not None, "a connected session"
        self._transport = cast(asyncio.WriteTransport, transport)
        self._replies = _Replies()
        transport.set_protocol(self._replies)

    @property
    def usable(self) -> bool:
        return (
            not self._broken
            and self._replies.lost is None
            and not self._transport.is_closing()
        )

    def _write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionError("the connection is closed")
        self._transport.write(data)

    async def _transaction(
        self, envelope: Envelope, size: int, deadline: float | None = None
    ) -> SendResult:
        timeout = float(self._settings.command_timeout)
        command = b"MAIL FROM:<" + envelope.sender.encode("ascii") + b">"
        if self._declare_size:
            command += b" SIZE=%d" % size
        command += b"\r\nRCPT TO:<" + envelope.recipient.encode("ascii") + b">\r\nDATA\r\n"
        self._write(command)
        replies: list[tuple[int, str]] = []
        try:
            # One wait for the three replies of the group, not one per reply: MAIL, RCPT
            # and DATA are answered together by any server that pipelines, each within the
            # command timeout of the one before.
            await self._replies.wait_for(3, 3 * timeout, deadline)
            replies = self._replies.take(3)
        except OSError:
            replies = self._replies.take(3)
            refusal = _first_refusal(replies)
            if refusal is None:
                raise
            # A server that refuses and hangs up (421) is reported by its reply.
            self._broken = True
            command_name, (code, message) = refusal
            status, text = split_enhanced(message)
            return SendResult(outcome_for_code(code), code, status, text, command_name,
                              self._host, self._tls)
        data = replies[2]
        refused = _first_refusal(replies)
        if refused is not None:
            if data[0] == 354:
                # RFC 2920 §3.1: the server took DATA although the transaction had failed;
                # end the (empty) message so the connection is back in step.
                self._write(b".\r\n")
                await self._replies.next(timeout, deadline)
            command_name, (code, message) = refused
            return await self._refused(command_name, code, message)
        content = envelope.data
        self._write(content + b".\r\n" if envelope.wire_ready else _wire_form(content))
        code, message = await self._replies.next(float(self._settings.data_timeout), deadline)
        status, text = split_enhanced(message)
        return SendResult(outcome_for_code(code), code, status, text, "DATA", self._host,
                          self._tls)

    async def _reset(self) -> None:
        try:
            self._write(b"RSET\r\n")
            await self._replies.next(10.0)
        except (OSError, TimeoutError):
            self._broken = True

    async def close(self) -> None:
        """QUIT with a short timeout, then close."""
        if self.usable:
            try:
                self._write(b"QUIT\r\n")
                await self._replies.next(5.0)
            except (OSError, TimeoutError):
                pass
        self._replies.close()
        self._transport.close()


def _first_refusal(replies: list[tuple[int, str]]) -> tuple[str, tuple[int, str]] | None:
    """The first reply of MAIL, RCPT, DATA (in that order) that ends the transaction."""
    for name, reply, good in zip(
        ("MAIL", "RCPT", "DATA"), replies, ((250,), (250, 251), (354,)), strict=False
    ):
        if reply[0] not in good:
            return name, reply
    return None


def _wire_form(data: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, then "."."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:  # counted, not copied
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = _LINE_START_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
