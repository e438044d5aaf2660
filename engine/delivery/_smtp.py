"""The SMTP client side: opening aiosmtplib connections for the lanes.

A lane opens a session for a connection slot the shaper granted (bound to the grant's
source address, with its HELO name) and sends message after message on it
(``engine.delivery._smtp_session``, one transaction per recipient).

STARTTLS is used when the server offers it (opportunistic, no certificate check, as between
MTAs). Like Postfix's ``may`` level, a receiver that answers STARTTLS with an error (454) gets
the mail in plain text on the same connection, and one whose TLS handshake fails gets it over a
new plain connection. Destinations that ``delivery.tls_required`` names (by MX host, or the
whole site the lane passes as ``tls_site``; ``engine.delivery._tls_policy``) never get plain
text: the result is a deferral answered by "STARTTLS" that says why. Each result says whether
the mail went over TLS.

PIPELINING (RFC 2920): when the receiver offers it, MAIL, RCPT and DATA go in one write
(``engine/delivery/_pipelining.py``), two round trips per mail instead of four;
``delivery.pipelining = false`` turns that off.

``SmtpTransport`` implements the ``Transport`` seam of ``engine.delivery._transport``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

import aiosmtplib

from engine.delivery._pipelining import PipelinedSession
from engine.delivery._routing import Destination
from engine.delivery._smtp_session import SmtpSession
from engine.delivery._tls_policy import TlsPolicy
from engine.delivery._transport import (
    SendResult,
    Session,
    SourceAddress,
    describe_error,
    split_enhanced,
)
from engine.platform.config import DeliverySettings
from engine.queue.models import Outcome

log = logging.getLogger(__name__)


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
                    Outcome.DEFERRED, None, None, describe_error(exc), "CONNECT", str(dest)
                )
                continue
            if self._settings.pipelining and smtp.supports_extension("pipelining"):
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
                raise _HandshakeFailed(describe_error(exc)) from None
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
