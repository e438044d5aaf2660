"""SMTP servers for tests: aiosmtpd on loopback that record mail and answer as told.

The recipient's local part decides the answer, so one server serves every scenario:

- ``reject...``        550 5.1.1 at RCPT (a permanent failure)
- ``spamfilter...``    554 5.7.1 at RCPT, "rejected as spam": one family's own filter
- ``policy...``        550 5.7.1 at RCPT, "sender blocked" by the recipient's policy
- ``tempfail<N>...``   451 4.3.0 at RCPT for the first N tries of that recipient, then accepted
- ``busy...``          421 4.7.0 at RCPT, always
- ``stall...``         DATA never answers (the client must time out)
- ``slow...``          DATA answers after 20 ms (keeps mails in flight for crash tests)
- anything else        250 after DATA
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_TEMPFAIL = re.compile(r"^tempfail(\d+)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    peer: Any
    helo: str = ""

    @property
    def message_id(self) -> str:
        return str(message_from_bytes(self.data)["Message-ID"])


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        local = address.rpartition("@")[0].strip('"').lower()
        with self.lock:
            self.tries[address] += 1
            tries = self.tries[address]
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("spamfilter"):
            return "554 5.7.1 Message rejected as spam"
        if local.startswith("policy"):
            return "550 5.7.1 Rejected by recipient policy: sender blocked"
        if local.startswith("busy"):
            return "421 4.7.0 Too many connections, try again later"
        m = _TEMPFAIL.match(local)
        if m and tries <= int(m.group(1)):
            return "451 4.3.0 Temporary local problem, try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(r.rpartition("@")[0].strip('"').startswith("stall") for r in envelope.rcpt_tos):
            await asyncio.sleep(30)
        if any(r.rpartition("@")[0].strip('"').startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(0.02)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append(
                    Received(str(envelope.mail_from), rcpt, bytes(envelope.content or b""),
                             session.peer, str(session.host_name or ""))
                )
        return "250 2.0.0 Ok: queued"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]


class _CountingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler = self.event_handler
        if isinstance(handler, RecordingHandler):
            with handler.lock:
                handler.connections += 1
        super().connection_made(transport)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


class Sink:
    """A recording SMTP server in its own thread; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", size_limit: int | None = None) -> None:
        """``size_limit``: the SIZE the server announces (RFC 1870); aiosmtpd's default else."""
        self.handler = RecordingHandler()
        self.host = host
        self.port = free_port(host)
        limits = {} if size_limit is None else {"data_size_limit": size_limit}
        self._controller = _Controller(
            self.handler, hostname=host, port=self.port, ready_timeout=10, **limits
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> Sink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
