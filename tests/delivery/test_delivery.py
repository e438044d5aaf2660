"""The SMTP client side: SIZE honoured, STARTTLS with Postfix-like fallback, TLS recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sinks import free_port

from engine.bounce import classify_reply
from engine.delivery._routing import Destination
from engine.delivery._smtp import SmtpTransport
from engine.delivery._smtp_session import SmtpSession
from engine.delivery._transport import Envelope as Mail
from engine.delivery._transport import SendResult
from engine.platform.config import DeliverySettings, Duration
from engine.queue.models import Outcome

SETTINGS = DeliverySettings(
    connect_timeout=Duration(2.0), command_timeout=Duration(2.0), data_timeout=Duration(2.0)
)


@dataclass
class Recorder:
    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    connections: int = 0
    tls_sessions: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if session.ssl is not None:
            self.tls_sessions += 1
        content = envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        self.mails.append((str(envelope.mail_from), list(envelope.mail_options), data))
        return "250 2.0.0 Ok: queued"


class _Server(SMTP):
    starttls_mode = "ok"  # "ok", "454" (refuse), "garbage" (accept, then break the handshake)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler = self.event_handler
        assert isinstance(handler, Recorder)
        if transport.get_extra_info("sslcontext") is None:  # not the TLS upgrade of one
            handler.connections += 1
        super().connection_made(transport)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.starttls_mode == "454":
            await self.push("454 4.7.0 TLS not available due to local problem")
            return
        if self.starttls_mode == "garbage":
            await self.push("220 Ready to start TLS")
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(b"this is not a TLS server hello\r\n" * 4)
            self.transport.close()
            return
        await super().smtp_STARTTLS(arg)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    where: Path = tmp_path_factory.mktemp("tls")
    (where / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (where / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(where / "cert.pem", where / "key.pem")
    return context


def server(
    mode: str = "ok", tls: ssl.SSLContext | None = None, size_limit: int | None = None
) -> Iterator[tuple[Recorder, Destination]]:
    recorder = Recorder()
    port = free_port()
    server_class = type("Server", (_Server,), {"starttls_mode": mode})

    class _Controller(Controller):
        def factory(self) -> SMTP:
            return server_class(self.handler, **self.SMTP_kwargs)  # type: ignore[no-any-return]

    kwargs: dict[str, Any] = {"require_starttls": False}
    if tls is not None:
        kwargs["tls_context"] = tls
    if size_limit is not None:
        kwargs["data_size_limit"] = size_limit
    controller = _Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=10,
                             **kwargs)
    controller.start()
    recorder.connections = 0  # the controller's own readiness probe
    try:
        yield recorder, Destination("127.0.0.1", port)
    finally:
        controller.stop()


async def send_one(
    dest: Destination, data: bytes = b"Subject: t\r\n\r\nhello\r\n",
    settings: DeliverySettings = SETTINGS,
) -> tuple[SendResult, bool | None]:
    opened = await SmtpTransport(settings).open([dest])
    if isinstance(opened, SendResult):
        return opened, None
    assert isinstance(opened, SmtpSession)
    try:
        result = await opened.send(Mail("b-1@bounce.example.jp", "parent@example.jp", data))
    finally:
        await opened.close()
    return result, opened.tls


def test_mail_goes_over_tls_when_offered(tls_context: ssl.SSLContext) -> None:
    for recorder, dest in server("ok", tls_context):
        result, tls = asyncio.run(send_one(dest))
        assert result.outcome is Outcome.DELIVERED
        assert tls is True and result.tls is True
        assert recorder.tls_sessions == 1 and recorder.connections == 1


def test_starttls_refused_with_454_falls_back_to_plain_text_on_the_same_connection(
    tls_context: ssl.SSLContext,
) -> None:
    for recorder, dest in server("454", tls_context):
        result, tls = asyncio.run(send_one(dest))
        assert result.outcome is Outcome.DELIVERED
        assert tls is False and result.tls is False
        assert len(recorder.mails) == 1 and recorder.tls_sessions == 0
        assert recorder.connections == 1


def test_failed_tls_handshake_falls_back_to_a_new_plain_connection(
    tls_context: ssl.SSLContext,
) -> None:
    for recorder, dest in server("garbage", tls_context):
        result, tls = asyncio.run(send_one(dest))
        assert result.outcome is Outcome.DELIVERED, result.text
        assert tls is False
        assert recorder.connections == 2 and len(recorder.mails) == 1


@pytest.mark.parametrize("mode", ["454", "garbage"])
def test_required_tls_never_falls_back(tls_context: ssl.SSLContext, mode: str) -> None:
    settings = replace(SETTINGS, tls_required=["127.0.0.1"])
    for recorder, dest in server(mode, tls_context):
        result, _ = asyncio.run(send_one(dest, settings=settings))
        assert result.outcome is Outcome.DEFERRED
        assert "tls_required" in result.text
        assert recorder.mails == []


def test_required_tls_defers_when_starttls_is_not_offered() -> None:
    settings = replace(SETTINGS, tls_required=["example.jp", "127.0.0.1"])
    for recorder, dest in server("ok", None):
        result, _ = asyncio.run(send_one(dest, settings=settings))
        assert result.outcome is Outcome.DEFERRED and "STARTTLS" in result.text
        assert recorder.mails == []


def test_starttls_off_sends_plain_text_even_when_offered(tls_context: ssl.SSLContext) -> None:
    for recorder, dest in server("ok", tls_context):
        result, tls = asyncio.run(send_one(dest, settings=replace(SETTINGS, starttls="off")))
        assert result.outcome is Outcome.DELIVERED and tls is False
        assert recorder.tls_sessions == 0


def test_size_is_declared_in_mail_from() -> None:
    data = b"Subject: t\r\n\r\n" + b"x" * 500 + b"\r\n"
    for recorder, dest in server(size_limit=10_000):
        result, _ = asyncio.run(send_one(dest, data))
        assert result.outcome is Outcome.DELIVERED
        [(_, options, _)] = recorder.mails
        assert options == [f"SIZE={len(data)}"]


def test_mail_over_the_announced_size_is_not_sent_and_is_not_the_guardians_fault() -> None:
    data = b"Subject: t\r\n\r\n" + b"x" * 20_000 + b"\r\n"
    for recorder, dest in server(size_limit=10_000):
        result, _ = asyncio.run(send_one(dest, data))
        assert recorder.mails == []
        assert result.outcome is Outcome.FAILED
        assert result.status == "5.3.4" and "10000" in result.text
        # Decided here: an outcome of the mail, nothing the shaper hears about the site.
        assert result.local and result.code is None
        verdict = classify_reply(
            result.code, result.status, result.text, result.command, "p@docomo.ne.jp",
            "docomo.ne.jp",
        )
        assert verdict.category == "too_big"  # not "mailbox_full": the address stays usable


async def test_whether_an_attempt_used_tls_is_recorded(engine: Any) -> None:
    from engine.queue.models import AttemptResult, NewBroadcast

    eng = engine
    now = eng.clock.now()
    broadcast = NewBroadcast("info@school.example.jp", "件名", "本文\n", ["a@example.jp",
                             "b@example.jp", "c@example.jp"])
    await eng.queue.enqueue(broadcast, now, 3600)
    claimed = await eng.queue.claim("r1", 10, now, 300)
    tls_of = dict(zip((d.id for d in claimed), (True, False, None), strict=True))
    # The one without TLS is deferred, and goes over TLS at its next attempt.
    results = [
        AttemptResult(d.id, Outcome.DELIVERED, now, 250, "2.0.0", "ok", "mx", tls=tls_of[d.id])
        if tls_of[d.id] is not False else
        AttemptResult(d.id, Outcome.DEFERRED, now, 451, "4.3.0", "later", "mx",
                      next_attempt_at=now, tls=False)
        for d in claimed
    ]
    assert await eng.queue.record("r1", results) == 3
    rows = await eng.pool.fetch("SELECT delivery_id, tls FROM delivery_attempts")
    assert {r["delivery_id"]: r["tls"] for r in rows} == tls_of
    # Shown with each delivery (deliveries --csv, the recipients list and CSV read this).
    bid = claimed[0].broadcast_id
    assert {r["id"]: r["tls"] for r in await eng.queue.deliveries_of(bid)} == tls_of
    later = now + dt.timedelta(minutes=1)
    again = await eng.queue.claim("r1", 10, later, 300)
    assert [tls_of[d.id] for d in again] == [False]
    await eng.queue.record("r1", [AttemptResult(
        again[0].id, Outcome.DELIVERED, later, 250, None, "ok", "mx", tls=True)])
    # The latest attempt is what is shown.
    assert [r["tls"] for r in await eng.queue.deliveries_of(bid)] == [True, True, None]


def test_552_to_mail_from_is_read_as_the_mail_being_too_big() -> None:
    class TooBig(Recorder):
        async def handle_MAIL(
            self, server: SMTP, session: Session, envelope: Envelope, address: str,
            options: list[str],
        ) -> str:
            return "552 Message size exceeds fixed maximum message size"

    recorder = TooBig()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        result, _ = asyncio.run(send_one(Destination("127.0.0.1", port)))
    finally:
        controller.stop()
    assert (result.outcome, result.code, result.status, result.command) == (
        Outcome.FAILED, 552, "5.3.4", "MAIL"
    )
    verdict = classify_reply(result.code, result.status, result.text, result.command,
                             "p@ezweb.ne.jp", "ezweb.ne.jp")
    assert verdict.category == "too_big"
