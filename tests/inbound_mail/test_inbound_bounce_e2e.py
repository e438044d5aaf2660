"""End to end: the runner sends, the receiving server accepts and bounces later, the bounce comes
back to the VERP address, and the next broadcast leaves the address out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from inbound_helpers import engine_with_inbound, enqueue, make_dsn, smtp_send
from sinks import free_port
from support import opened_row, wait_until

from engine.message import verp
from inbound import InboundServer


@dataclass
class BouncingMx:
    """Accepts every mail with 250, then mails a DSN (5.1.1) for ``unknown`` recipients to the
    mail's envelope sender at the inbound server, as a real MX does after queueing it."""

    inbound: InboundServer
    unknown: set[str]
    received: list[tuple[str, str]] = field(default_factory=list)
    sent_dsns: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for rcpt in envelope.rcpt_tos:
            self.received.append((str(envelope.mail_from), rcpt))
            if rcpt in self.unknown:
                task = asyncio.create_task(self._bounce(str(envelope.mail_from), rcpt))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return "250 2.0.0 Ok: queued as 4711"

    async def _bounce(self, return_path: str, rcpt: str) -> None:
        # The null sender, as RFC 3464 asks of a DSN.
        code, text = await smtp_send(self.inbound, "", [return_path], make_dsn(return_path, rcpt))
        assert code == 250, text
        self.sent_dsns.append(return_path)


async def test_later_bounce_is_matched_classified_and_suppresses_the_next_broadcast(
    db_url: str,
) -> None:
    mx_port = free_port()
    routing: dict[str, Any] = {"transport": {"*": f"127.0.0.1:{mx_port}"}}
    async with engine_with_inbound(db_url, routing=routing) as (eng, inbound):
        mx = BouncingMx(inbound, unknown={"ghost@example.jp"})
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(mx, hostname="mx.example.jp"),
                                          "127.0.0.1", mx_port)
        try:
            first = await enqueue(eng, ["ghost@example.jp", "chichi@example.jp"])
            runner = await eng.runner()
            stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
            assert stats.delivered == 2  # the MX accepted both

            async def bounced() -> bool:
                n = await eng.pool.fetchval("SELECT count(*) FROM suppressions")
                return bool(n == 1)

            await wait_until(bounced, timeout=10)
            rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(first)}
            bounce = await opened_row(eng.pool, eng.queue.sealer, "SELECT * FROM bounces")
            suppression = await opened_row(eng.pool, eng.queue.sealer, "SELECT * FROM suppressions")

            # The bounce came to the VERP address of exactly that delivery.
            secret = await eng.verp_secret()
            [return_path] = mx.sent_dsns
            assert verp.delivery_id_of(secret, return_path) == rows["ghost@example.jp"]["id"]
            assert bounce["delivery_id"] == rows["ghost@example.jp"]["id"]
            assert (bounce["reason"], bounce["category"], bounce["hard"]) == (
                "userunknown", "unknown_user", True
            )
            ghost = rows["ghost@example.jp"]
            assert (ghost["state"], ghost["reason"], ghost["category"]) == (
                "failed", "userunknown", "unknown_user"
            )
            assert ghost["last_status"] == "5.1.1"
            assert rows["chichi@example.jp"]["state"] == "delivered"
            assert (suppression["address"], suppression["source"]) == ("ghost@example.jp", "bounce")

            # The next broadcast: the address is listed as failed/suppressed and not sent.
            second = await enqueue(eng, ["chichi@example.jp", "ghost@example.jp"])
            runner = await eng.runner()
            stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
            assert stats.delivered == 1
            rows2 = {r["recipient"]: r for r in await eng.queue.deliveries_of(second)}
            [counts] = await eng.queue.broadcast_counts([second])
        finally:
            server.close()
            await server.wait_closed()
    ghost2 = rows2["ghost@example.jp"]
    assert (ghost2["state"], ghost2["reason"], ghost2["category"], ghost2["attempts"]) == (
        "failed", "suppressed", "unknown_user", 0
    )
    assert ghost2["last_text"].startswith("配信停止リストに登録済み (宛先不明, ")
    assert ghost2["finished_at"] is not None
    assert counts.suppressed_count == 1
    assert sorted(r for _, r in mx.received) == [
        "chichi@example.jp", "chichi@example.jp", "ghost@example.jp"
    ]
