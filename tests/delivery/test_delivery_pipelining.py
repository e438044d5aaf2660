"""Pipelined transactions (RFC 2920) against a server that offers PIPELINING."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st
from sinks import free_port

from delivery.test_delivery import SETTINGS, Recorder, _Server, send_one, tls_context  # noqa: F401
from engine.delivery._pipelining import PipelinedSession
from engine.delivery._routing import Destination
from engine.delivery._smtp import SmtpTransport
from engine.delivery._smtp_session import SmtpSession
from engine.delivery._transport import Envelope as Mail
from engine.delivery._transport import SendResult
from engine.queue.models import Outcome


class PipeliningRecorder(Recorder):
    """Offers PIPELINING; local parts decide the answers like tests/sinks.py."""

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        options: list[str],
    ) -> str:
        if address.startswith("big"):
            return "552 5.3.4 Message size exceeds fixed limit"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        options: list[str],
    ) -> str:
        if address.startswith("reject"):
            return f"550 5.1.1 <{address}>: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if envelope.rcpt_tos and envelope.rcpt_tos[0].startswith("stall"):
            await asyncio.sleep(5)
        return await super().handle_DATA(server, session, envelope)


def pipelining_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[Recorder, Destination]]:
    recorder = PipeliningRecorder()
    port = free_port()

    class _Controller(Controller):
        def factory(self) -> SMTP:
            return _Server(self.handler, **self.SMTP_kwargs)

    kwargs: dict[str, Any] = {"require_starttls": False, "data_size_limit": 100_000}
    if tls is not None:
        kwargs["tls_context"] = tls
    controller = _Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=10,
                             **kwargs)
    controller.start()
    recorder.connections = 0
    try:
        yield recorder, Destination("127.0.0.1", port)
    finally:
        controller.stop()


async def session_for(dest: Destination, **settings: Any) -> SmtpSession:
    opened = await SmtpTransport(replace(SETTINGS, **settings)).open([dest])
    assert not isinstance(opened, SendResult), opened
    assert isinstance(opened, SmtpSession)
    return opened


MAIL = b"Subject: t\r\n\r\n.a line that starts with a dot\r\nand another\r\n..two\r\n"


async def send_many(dest: Destination, recipients: list[str], sender: str = "b@x.jp",
                    **settings: Any) -> tuple[list[SendResult], SmtpSession]:
    session = await session_for(dest, **settings)
    results = []
    try:
        for rcpt in recipients:
            results.append(await session.send(Mail(sender, rcpt, MAIL)))
    finally:
        await session.close()
    return results, session


def test_a_server_offering_pipelining_gets_pipelined_transactions() -> None:
    for recorder, dest in pipelining_server():
        results, session = asyncio.run(send_many(dest, ["a@e.jp", "b@e.jp", "c@e.jp"]))
        assert isinstance(session, PipelinedSession)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert [r.code for r in results] == [250] * 3
        assert recorder.connections == 1 and len(recorder.mails) == 3
        # Dots were doubled on the wire and undone by the server: the mail is unchanged.
        assert all(data == MAIL for _, _, data in recorder.mails)
        assert all(options == [f"SIZE={len(MAIL)}"] for _, options, _ in recorder.mails)


def test_pipelining_can_be_turned_off() -> None:
    for recorder, dest in pipelining_server():
        results, session = asyncio.run(send_many(dest, ["a@e.jp"], pipelining=False))
        assert not isinstance(session, PipelinedSession)
        assert results[0].outcome is Outcome.DELIVERED and recorder.mails[0][2] == MAIL


def test_a_refused_recipient_fails_alone_and_the_connection_goes_on() -> None:
    for recorder, dest in pipelining_server():
        results, _ = asyncio.run(send_many(dest, ["a@e.jp", "reject1@e.jp", "c@e.jp"]))
        assert [r.outcome for r in results] == [
            Outcome.DELIVERED, Outcome.FAILED, Outcome.DELIVERED
        ]
        refused = results[1]
        assert (refused.code, refused.status, refused.command) == (550, "5.1.1", "RCPT")
        assert len(recorder.mails) == 2
        assert recorder.connections == 1


def test_552_to_a_pipelined_mail_from_is_the_mails_size() -> None:
    for recorder, dest in pipelining_server():
        results, _ = asyncio.run(send_many(dest, ["a@e.jp"], sender="big@x.jp"))
        assert (results[0].outcome, results[0].status, results[0].command) == (
            Outcome.FAILED, "5.3.4", "MAIL"
        )
        assert recorder.mails == []


def test_a_reply_that_never_comes_defers_and_breaks_the_session() -> None:
    for _recorder, dest in pipelining_server():
        results, session = asyncio.run(
            send_many(dest, ["stall@e.jp"], data_timeout=0.3)
        )
        assert results[0].outcome is Outcome.DEFERRED and "timed out" in results[0].text
        assert not session.usable


def test_pipelining_over_tls(tls_context: ssl.SSLContext) -> None:  # noqa: F811
    for recorder, dest in pipelining_server(tls_context):
        results, session = asyncio.run(send_many(dest, ["a@e.jp", "b@e.jp"]))
        assert isinstance(session, PipelinedSession) and session.tls
        assert all(r.outcome is Outcome.DELIVERED and r.tls for r in results)
        assert recorder.tls_sessions == 2


@pytest.mark.parametrize("answer", ["421 4.3.2 shutting down", None])
def test_server_going_away_mid_session_defers(answer: str | None) -> None:
    async def scenario(dest: Destination) -> tuple[SendResult, bool]:
        session = await session_for(dest)
        assert isinstance(session, PipelinedSession)
        # Simulate the server closing (with or without a last word) before the next mail.
        if answer is not None:
            session._replies.data_received(answer.encode() + b"\r\n")
        session._replies.connection_lost(None)
        result = await session.send(Mail("b@x.jp", "a@e.jp", MAIL))
        await session.close()
        return result, session.usable

    for _recorder, dest in pipelining_server():
        result, usable = asyncio.run(scenario(dest))
        assert result.outcome is Outcome.DEFERRED and not usable
        if answer is not None:  # the server's last word is what the result reports
            assert (result.code, result.status, result.command) == (421, "4.3.2", "MAIL")


async def test_the_runner_delivers_a_broadcast_over_pipelined_connections(db_url: str) -> None:
    from support import make_settings

    from engine.delivery.context import Engine
    from engine.queue.models import NewBroadcast

    servers = pipelining_server()
    recorder, dest = next(servers)
    try:
        settings = make_settings(db_url, routing={"transport": {"*": str(dest)}})
        eng = await Engine.open(settings)
        try:
            recipients = [f"g{i}@example.jp" for i in range(60)] + ["reject9@example.jp"]
            bid = await eng.queue.enqueue(
                NewBroadcast("info@city.example.jp", "お知らせ", "本文\n.点で始まる行\n",
                             recipients),
                eng.clock.now(), 3600,
            )
            runner = await eng.runner()
            stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
            states = await eng.queue.deliveries_of(bid)
        finally:
            await eng.close()
    finally:
        next(servers, None)
    assert stats.delivered == 60 and stats.failed == 1
    assert {r["recipient"]: r["state"] for r in states}["reject9@example.jp"] == "failed"
    assert len(recorder.mails) == 60
    # The size declared with each pipelined MAIL FROM is the size the server received.
    assert all(options == [f"SIZE={len(data)}"] for _, options, data in recorder.mails)


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_attempts_deadline_ends_a_stalled_attempt(pipelining: bool) -> None:
    """The lanes bound each attempt inside the lease with a deadline the session keeps: a
    server that stalls ends the attempt at the deadline, not at the (long) DATA timeout."""

    async def scenario(dest: Destination) -> tuple[list[SendResult], float, bool]:
        session = await session_for(dest, pipelining=pipelining)
        assert isinstance(session, PipelinedSession) is pipelining
        loop = asyncio.get_running_loop()
        try:
            # A first mail arms the connection's timer for the long command timeouts; the
            # second's earlier deadline must still be kept.
            first = await session.send(Mail("b@x.jp", "a@e.jp", MAIL), loop.time() + 30)
            started = loop.time()
            second = await session.send(Mail("b@x.jp", "stall@e.jp", MAIL), started + 0.3)
            took = loop.time() - started
        finally:
            await session.close()
        return [first, second], took, session.usable

    for _recorder, dest in pipelining_server():
        (first, second), took, usable = asyncio.run(scenario(dest))
        assert first.outcome is Outcome.DELIVERED
        assert second.outcome is Outcome.DEFERRED and "timed out" in second.text
        assert took < 3  # the server stalls for 5 s; the DATA timeout is 180 s
        assert not usable


def test_waits_that_move_the_deadline_on_are_not_cut_by_an_earlier_timer() -> None:
    """One timer per connection: when it fires for a deadline that later waits have moved
    on, it is set again, and no healthy wait fails."""

    async def scenario(dest: Destination) -> list[SendResult]:
        # Timeouts short enough for the first wait's timer to fire during the test, long
        # enough that a busy machine (2 cores, a parallel suite) never stalls a reply past them.
        session = await session_for(dest, command_timeout=0.5, data_timeout=0.5)
        assert isinstance(session, PipelinedSession)
        loop = asyncio.get_running_loop()
        results = []
        started = loop.time()
        try:
            # Well past the first wait's 1.5 s (3 x the command timeout) in all.
            while loop.time() - started < 2.0 and len(results) < 50_000:
                results.append(await session.send(Mail("b@x.jp", "a@e.jp", MAIL)))
        finally:
            await session.close()
        return results

    for _recorder, dest in pipelining_server():
        results = asyncio.run(scenario(dest))
        assert len(results) > 3
        assert all(r.outcome is Outcome.DELIVERED for r in results), {r.text for r in results}


_reply_lines = st.lists(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30), min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(replies=st.lists(st.tuples(st.integers(200, 599), _reply_lines), min_size=1, max_size=5),
       cuts=st.lists(st.integers(0, 400), max_size=6), bare_lf=st.booleans())
def test_replies_are_read_the_same_however_the_segments_fall(
    replies: list[tuple[int, list[str]]], cuts: list[int], bare_lf: bool
) -> None:
    """Whole lines in one segment (split at once) or cut anywhere (through the buffer):
    the same replies, multi-line ones joined, in order."""
    from engine.delivery._pipelining import _Replies

    end = "\n" if bare_lf else "\r\n"
    wire = "".join(
        "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}{end}"
                for i, line in enumerate(lines))
        for code, lines in replies
    ).encode()
    expected = [(code, "\n".join(lines)) for code, lines in replies]
    for points in ([], sorted({c % (len(wire) + 1) for c in cuts})):
        got = _Replies()
        for start, stop in zip([0, *points], [*points, len(wire)], strict=True):
            if stop > start:
                got.data_received(wire[start:stop])
        assert got.lost is None
        assert got.take(len(replies) + 1) == expected


def test_a_malformed_reply_ends_the_connection_whole_or_cut() -> None:
    from engine.delivery._pipelining import _Replies

    for chunks in ([b"250 ok\r\nxyz oops\r\n"], [b"250 ok\r\nxy", b"z oops\r\n"]):
        got = _Replies()
        for chunk in chunks:
            got.data_received(chunk)
        assert got.take(5) == [(250, "ok")]
        assert isinstance(got.lost, ConnectionError)
