"""The inbound SMTP server: listens, limits connections per client, offers STARTTLS.

It runs in the caller's event loop (``mamoru serve`` starts it beside the runner)::

    server = InboundServer(settings, pool, verp_secret, clock)
    await server.start()
    ...
    await server.stop()

or ``async with InboundServer(...) as server: ...``. The conversation and what a received mail
does are in ``inbound.handler``.

Limits: ``inbound.max_message_size`` is advertised as SIZE and enforced by aiosmtpd, which
counts the bytes as they come and drops them once over the limit (``552``), so an over-size mail
is never held in memory whole; ``inbound.max_connections_per_client`` open connections per
client IP, the next ones get ``421 4.7.0`` and are closed at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP

from engine.delivery.preflight import server_tls_context
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings, parse_host_port
from engine.platform.errors import ConfigError
from inbound.handler import InboundHandler

log = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = b"421 4.7.0 Too many connections from your address, try again later\r\n"
#: How long ``stop`` lets mails being stored finish before closing their connections.
STOP_GRACE = 10.0


class _InboundSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a per-client-IP connection gate."""

    # Bounces from sloppy MTAs have long lines; losing a bounce to RFC 5321's 1000 is worse.
    line_length_limit = 64 * 1024

    def __init__(self, server: InboundServer, handler: InboundHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._inbound = server
        self._client_ip: str | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client_ip is None and not self._refused:
            # The first call; a second one comes with the TLS transport after STARTTLS.
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else "?"
            if not self._inbound._admit(ip, self):
                log.info("refused connection from %s: too many open connections", ip)
                self._refused = True
                transport.write(TOO_MANY_CONNECTIONS)  # type: ignore[attr-defined]
                transport.close()
                return
            self._client_ip = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._client_ip is not None:
            self._inbound._release(self._client_ip, self)
            self._client_ip = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def disconnect(self) -> None:
        if self.transport is not None:
            self.transport.close()


class InboundServer:
    """Bounces to VERP addresses and mail to service addresses, over SMTP."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        verp_secret: bytes,
        clock: Clock | None = None,
    ) -> None:
        if not settings.inbound.listen:
            raise ConfigError("inbound.listen is empty: the inbound server is disabled")
        self.settings = settings
        self.host, self.port = parse_host_port(
            "inbound.listen", settings.inbound.listen, 25
        )
        self.handler = InboundHandler(settings, pool, verp_secret, clock or SystemClock())
        cfg = settings.inbound
        self._tls = server_tls_context("inbound", cfg.tls_cert, cfg.tls_key)
        self._server: asyncio.Server | None = None
        self._open: dict[str, set[_InboundSMTP]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.settings.inbound

        def protocol() -> _InboundSMTP:
            return _InboundSMTP(
                self,
                self.handler,
                data_size_limit=cfg.max_message_size,
                hostname=cfg.hostname,
                ident="mamoru inbound",
                # Bounces from Japanese systems may use UTF-8 addresses; refusing them loses them.
                enable_SMTPUTF8=True,
                tls_context=self._tls,
                loop=loop,
            )

        try:
            self._server = await loop.create_server(protocol, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                f"inbound.listen {cfg.listen}: cannot listen ({exc.strerror}); "
                f"choose a free address and port"
            ) from None
        log.info("inbound SMTP listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, let mails being stored finish (up to ``STOP_GRACE``), close the rest."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            log.warning("inbound: closing connections with mails still being stored")
        for protocols in list(self._open.values()):
            for p in list(protocols):
                p.disconnect()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> InboundServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def connections(self, ip: str) -> int:
        return len(self._open.get(ip, ()))

    def _admit(self, ip: str, protocol: _InboundSMTP) -> bool:
        current = self._open.setdefault(ip, set())
        if len(current) >= self.settings.inbound.max_connections_per_client:
            return False
        current.add(protocol)
        return True

    def _release(self, ip: str, protocol: _InboundSMTP) -> None:
        current = self._open.get(ip)
        if current is not None:
            current.discard(protocol)
            if not current:
                del self._open[ip]
