"""What the delivery path asks of an SMTP client, and what it gets back.

``Transport.open`` gives a ``Session`` (or the ``SendResult`` saying why no server answered);
a session sends one ``Envelope`` after another and answers each with a ``SendResult``. The
lanes see only these shapes, so tests may pass any object that has them;
``engine.delivery._smtp`` is the aiosmtplib implementation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.delivery._routing import Destination
from engine.queue.models import Outcome

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b\s*")


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    data: bytes
    # `data` is already as DATA sends it (CRLF line ends only, ending with CRLF, no line that
    # starts with "."), as ``MessageTemplate.render_wire`` says of its mails: not scanned again.
    wire_ready: bool = False


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
    # Decided here, not answered by the receiver: the mail was not sent at all (over the
    # receiver's announced SIZE, an address it cannot take). Its own enhanced status says why;
    # it is the mail's outcome and tells the shaper nothing about the site.
    local: bool = False


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

    async def send(self, envelope: Envelope, deadline: float | None = None) -> SendResult:
        """One transaction; `deadline` (event-loop time, ``loop.time()``): the attempt ends
        by then, a deferral saying it timed out."""

    async def close(self) -> None: ...


def describe_error(exc: BaseException) -> str:
    """An exception as one line for a result's text: its type and message."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
