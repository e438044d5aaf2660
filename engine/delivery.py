"""The SMTP client side: pooled aiosmtplib connections, one transaction per recipient.

Connections are kept per (source address, host, port) and reused for up to
``delivery.messages_per_connection`` mails. A successful transaction leaves the connection
ready for the next ``MAIL FROM`` (RFC 5321 §4.1.4), so no round trip is spent on RSET then;
after a refused command the transaction is reset with RSET before reuse. STARTTLS is used when
the server offers it (opportunistic, no certificate check, as between MTAs). Every step has a
timeout.

``Transport`` is the seam: the runner calls ``send`` and gets a ``SendResult``; tests may pass
any object with that method.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosmtplib

from engine.clock import Clock, SystemClock
from engine.config import DeliverySettings
from engine.queue.models import Outcome
from engine.routing import Destination

log = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b\s*")
# A pooled connection idle longer than this is closed rather than reused: servers drop idle
# clients (RFC 5321 asks them to wait 5 minutes; many wait less).
_IDLE_SECONDS = 30.0


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

    @property
    def connection_failed(self) -> bool:
        return self.code is None


class Transport(Protocol):
    async def send(
        self,
        destinations: Sequence[Destination],
        envelope: Envelope,
        source: SourceAddress | None = None,
    ) -> SendResult: ...

    async def close(self) -> None: ...


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


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0
    last_used: float = 0.0


@dataclass
class _HostPool:
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class _Refused(Exception):
    """A reply that ends the transaction; carries the command it answered."""

    def __init__(self, command: str, code: int, message: str) -> None:
        super().__init__(message)
        self.command = command
        self.code = code
        self.message = message


class SmtpTransport:
    """Delivers envelopes over pooled SMTP connections."""

    def __init__(self, settings: DeliverySettings, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._pools: dict[tuple[str | None, str, int], _HostPool] = {}
        self._closing = False

    async def send(
        self,
        destinations: Sequence[Destination],
        envelope: Envelope,
        source: SourceAddress | None = None,
    ) -> SendResult:
        """Try each destination in order until one answers the transaction."""
        source = source or SourceAddress()
        if not (envelope.sender.isascii() and envelope.recipient.isascii()):
            # Addresses are checked at enqueue; this guards rows written by other means.
            return SendResult(
                Outcome.FAILED, None, None,
                "the address is not ASCII and the server was not asked for SMTPUTF8",
                "RCPT", None,
            )
        last: SendResult | None = None
        for dest in destinations:
            result = await self._send_to(dest, envelope, source)
            # Only a failure to get a session moves on to the next MX: once a transaction has
            # begun, the mail may have been taken, and trying elsewhere would send it twice.
            if result.command != "CONNECT":
                return result
            last = result
        assert last is not None, "no destinations"
        return last

    async def _send_to(
        self, dest: Destination, envelope: Envelope, source: SourceAddress
    ) -> SendResult:
        pool = self._pool_for(dest, source)
        async with pool.slots:
            # A pooled connection may have been closed by the server while idle; that shows
            # only when we use it, so one such failure is retried on a fresh connection.
            for attempt in range(2):
                conn = self._take_idle(pool)
                reused = conn is not None
                if conn is None:
                    try:
                        conn = await self._connect(dest, source)
                    except aiosmtplib.SMTPConnectResponseError as exc:
                        status, text = split_enhanced(exc.message)
                        return SendResult(
                            Outcome.DEFERRED, exc.code, status, text, "CONNECT", str(dest)
                        )
                    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                        return SendResult(
                            Outcome.DEFERRED, None, None, _describe(exc), "CONNECT", str(dest)
                        )
                try:
                    result = await self._transaction(conn, envelope, str(dest))
                except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    await _close(conn)
                    if reused and attempt == 0:
                        continue
                    return SendResult(
                        Outcome.DEFERRED, None, None, _describe(exc), "DATA", str(dest)
                    )
                except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
                    await _close(conn)
                    return SendResult(
                        Outcome.DEFERRED, None, None, f"timed out: {_describe(exc)}",
                        "DATA", str(dest),
                    )
                except aiosmtplib.SMTPException as exc:
                    await _close(conn)
                    return SendResult(
                        Outcome.DEFERRED, None, None, _describe(exc), "DATA", str(dest)
                    )
                await self._give_back(pool, conn, result)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _pool_for(self, dest: Destination, source: SourceAddress) -> _HostPool:
        key = (source.address, dest.host, dest.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _HostPool(
                asyncio.Semaphore(self._settings.connections_per_host)
            )
        return pool

    def _take_idle(self, pool: _HostPool) -> _Connection | None:
        now = self._clock.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            if conn.smtp.is_connected and now - conn.last_used < _IDLE_SECONDS:
                return conn
            asyncio.get_running_loop().create_task(_close(conn))
        return None

    async def _connect(self, dest: Destination, source: SourceAddress) -> _Connection:
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=dest.host,
            port=dest.port,
            local_hostname=source.helo or s.helo,
            source_address=(source.address, 0) if source.address else None,
            timeout=s.command_timeout,
            # None: upgrade when the server offers STARTTLS; False: never.
            start_tls=None if s.starttls == "opportunistic" else False,
            validate_certs=False,
        )
        await smtp.connect(timeout=s.connect_timeout)
        if smtp.is_ehlo_or_helo_needed:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                await smtp.helo()
        return _Connection(smtp)

    async def _transaction(
        self, conn: _Connection, envelope: Envelope, host: str
    ) -> SendResult:
        smtp = conn.smtp
        try:
            # MAIL and RCPT go through execute_command: the envelope addresses were checked and
            # written as SMTP paths when the broadcast was enqueued, and aiosmtplib's own mail()
            # and rcpt() would parse them again with email.utils on every message (a fifth of
            # the runner's time in profiles).
            sender = envelope.sender.encode("ascii")
            recipient = envelope.recipient.encode("ascii")
            reply = await smtp.execute_command(b"MAIL", b"FROM:<" + sender + b">")
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
            status, text = split_enhanced(refused.message)
            await _reset(conn)
            return SendResult(
                outcome_for_code(refused.code), refused.code, status, text, refused.command, host
            )
        conn.sent += 1
        status, text = split_enhanced(response.message)
        return SendResult(
            outcome_for_code(response.code), response.code, status, text, "DATA", host
        )

    async def _give_back(self, pool: _HostPool, conn: _Connection, result: SendResult) -> None:
        usable = (
            not self._closing
            and conn.smtp.is_connected
            and conn.sent < self._settings.messages_per_connection
            # 421 means the server is closing the connection.
            and result.code != 421
        )
        if usable:
            conn.last_used = self._clock.monotonic()
            pool.idle.append(conn)
        else:
            await _close(conn)

    async def close(self) -> None:
        """Close every pooled connection (QUIT, with a short timeout)."""
        self._closing = True
        conns = [c for pool in self._pools.values() for c in pool.idle]
        for pool in self._pools.values():
            pool.idle.clear()
        await asyncio.gather(*(_close(c) for c in conns), return_exceptions=True)


async def _reset(conn: _Connection) -> None:
    try:
        await conn.smtp.rset(timeout=10)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        await _close(conn)


async def _close(conn: _Connection) -> None:
    smtp = conn.smtp
    if not smtp.is_connected:
        return
    try:
        await smtp.quit(timeout=5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
