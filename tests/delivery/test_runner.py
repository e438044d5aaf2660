"""The runner against real PostgreSQL and real SMTP servers on loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from sinks import Sink, free_port
from support import make_settings, opened_rows, wait_until

from engine.delivery._routing import MxAnswer, Router
from engine.delivery.context import Engine
from engine.message import verp
from engine.queue import NewBroadcast, Priority


@asynccontextmanager
async def engine_for(db_url: str, target: str, **sections: dict[str, Any]) -> AsyncIterator[Engine]:
    routing = {"transport": {"*": target}}
    eng = await Engine.open(make_settings(db_url, routing=routing, **sections))
    try:
        yield eng
    finally:
        await eng.close()


async def enqueue(eng: Engine, recipients: list[str], **kw: Any) -> int:
    b = NewBroadcast(
        sender="kyouiku@city.example.jp",
        subject="【緊急】不審者情報",
        body="本日15時頃、学校付近で不審者が目撃されました。\n下校時はご注意ください。\n",
        recipients=recipients,
        **kw,
    )
    return await eng.queue.enqueue(b, eng.clock.now(), eng.settings.queue.max_age)


async def rows_by_recipient(eng: Engine, bid: int) -> dict[str, dict[str, Any]]:
    return {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}


@asynccontextmanager
async def running(eng: Engine, **kw: Any) -> AsyncIterator[Any]:
    runner = await eng.runner(**kw)
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(task, timeout=15)


async def test_broadcast_is_delivered_with_verp_and_stable_message_id(
    db_url: str, sink: Sink
) -> None:
    async with engine_for(db_url, sink.address) as eng:
        bid = await enqueue(eng, ["hogosha1@example.jp", "old..style@docomo.ne.jp"])
        runner = await eng.runner()
        stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        assert stats.delivered == 2
        rows = await rows_by_recipient(eng, bid)
        assert {r["state"] for r in rows.values()} == {"delivered"}
        assert all(r["last_code"] == 250 and r["attempts"] == 1 for r in rows.values())
        secret = await eng.verp_secret()
    got = {r.rcpt: r for r in sink.handler.received}
    # aiosmtpd hands over the address unquoted; the To: header shows how it was written.
    assert set(got) == {"hogosha1@example.jp", "old..style@docomo.ne.jp"}
    assert message_from_bytes(got["old..style@docomo.ne.jp"].data)["To"] == (
        '"old..style"@docomo.ne.jp'
    )
    for rcpt, row in zip(
        ["hogosha1@example.jp", "old..style@docomo.ne.jp"],
        [rows["hogosha1@example.jp"], rows["old..style@docomo.ne.jp"]],
        strict=True,
    ):
        received = got[rcpt]
        assert verp.delivery_id_of(secret, received.mail_from) == row["id"]
        msg = message_from_bytes(received.data)
        assert re.fullmatch(
            rf"<mamoru\.{bid}\.{row['id']}\.[a-z2-7]{{16}}@city\.example\.jp>", msg["Message-ID"]
        )
        assert str(make_header(decode_header(msg["Subject"]))) == "【緊急】不審者情報"
        assert "不審者" in msg.get_payload(decode=True).decode("utf-8")


async def test_connections_are_reused_for_many_mails(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address, delivery={"connections_per_host": 2}) as eng:
        await enqueue(eng, [f"g{i}@example.jp" for i in range(60)])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
    assert len(sink.handler.received) == 60
    # Two pooled connections (plus the one the test server makes to itself at start).
    assert sink.handler.connections <= 3


async def test_temporary_failure_is_retried_until_it_succeeds(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address) as eng:
        bid = await enqueue(eng, ["tempfail2@example.jp"])
        async with running(eng):
            async def delivered() -> bool:
                row = (await rows_by_recipient(eng, bid))["tempfail2@example.jp"]
                return bool(row["state"] == "delivered")

            await wait_until(delivered, timeout=15)
        row = (await rows_by_recipient(eng, bid))["tempfail2@example.jp"]
        assert row["attempts"] == 3
        log = await eng.pool.fetch(
            "SELECT outcome, code FROM delivery_attempts ORDER BY attempted_at"
        )
        assert [(r["outcome"], r["code"]) for r in log] == [
            ("deferred", 451), ("deferred", 451), ("delivered", 250)
        ]


async def test_permanent_failure_fails_at_once(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address) as eng:
        bid = await enqueue(eng, ["reject-me@example.jp", "ok@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        rows = await rows_by_recipient(eng, bid)
    bad = rows["reject-me@example.jp"]
    assert (bad["state"], bad["attempts"], bad["last_code"], bad["last_status"]) == (
        "failed", 1, 550, "5.1.1"
    )
    assert "User unknown" in bad["last_text"]
    # Our own attempt's reply is classified as a bounce would be.
    assert (bad["reason"], bad["category"]) == ("userunknown", "unknown_user")
    # The refusal did not spoil the connection for the next mail.
    assert rows["ok@example.jp"]["state"] == "delivered"


async def test_delivery_that_keeps_failing_expires(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address, queue={"max_age": 0.6}) as eng:
        bid = await enqueue(eng, ["busy@example.jp"])
        async with running(eng):
            async def failed() -> bool:
                row = (await rows_by_recipient(eng, bid))["busy@example.jp"]
                return bool(row["state"] == "failed")

            await wait_until(failed, timeout=15)
        row = (await rows_by_recipient(eng, bid))["busy@example.jp"]
    assert row["reason"] == "expired"
    assert row["category"] is not None
    assert row["attempts"] >= 2
    assert row["last_code"] == 421


async def test_closed_port_is_deferred_not_failed(db_url: str) -> None:
    # A retry a minute away: with the suite's 50 ms retries a loaded machine's runner tried
    # the refused port twice before it saw no work left.
    async with engine_for(db_url, f"127.0.0.1:{free_port()}",
                          queue={"retry_base": 60.0, "retry_max": 60.0}) as eng:
        bid = await enqueue(eng, ["a@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        row = (await rows_by_recipient(eng, bid))["a@example.jp"]
    assert row["state"] == "deferred"
    assert row["attempts"] == 1 and row["last_code"] is None
    assert row["last_text"]


async def test_stalled_server_times_out_and_is_deferred(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address, delivery={"data_timeout": 0.5}) as eng:
        bid = await enqueue(eng, ["stall@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        row = (await rows_by_recipient(eng, bid))["stall@example.jp"]
    assert row["state"] == "deferred"
    assert "timed out" in row["last_text"]


async def test_graceful_stop_gives_unsent_mail_back(db_url: str, sink: Sink) -> None:
    async with engine_for(
        db_url, sink.address, delivery={"data_timeout": 20, "shutdown_grace": 0.3}
    ) as eng:
        bid = await enqueue(eng, ["stall1@example.jp", "stall2@example.jp"])
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        await wait_until(lambda: sink.handler.tries["stall1@example.jp"] >= 1, timeout=10)
        await wait_until(lambda: sink.handler.tries["stall2@example.jp"] >= 1, timeout=10)
        runner.stop()
        stats = await asyncio.wait_for(task, timeout=10)
        rows = await rows_by_recipient(eng, bid)
    assert stats.released == 2
    assert {r["state"] for r in rows.values()} == {"queued"}
    assert all(r["attempts"] == 0 for r in rows.values())


async def test_domain_that_does_not_exist_fails_without_sending(db_url: str) -> None:
    class NoSuchDomain:
        async def lookup(self, domain: str) -> MxAnswer:
            return MxAnswer((), 300, exists=False)

    eng = await Engine.open(make_settings(db_url))
    try:
        bid = await enqueue(eng, ["x@nonexistent.example"])
        runner = await eng.runner(router=Router(eng.settings.routing, lookup=NoSuchDomain()))
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        row = (await rows_by_recipient(eng, bid))["x@nonexistent.example"]
    finally:
        await eng.close()
    assert (row["state"], row["reason"]) == ("failed", "hostunknown")
    assert "does not exist" in row["last_text"]


async def test_emergency_is_sent_before_bulk(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address, delivery={"concurrency": 1}) as eng:
        await enqueue(eng, [f"bulk{i}@example.jp" for i in range(20)], priority=Priority.BULK)
        await enqueue(eng, ["urgent@example.jp"], priority=Priority.EMERGENCY)
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
    assert sink.handler.received[0].rcpt == "urgent@example.jp"
    assert len(sink.handler.received) == 21


async def test_new_broadcast_wakes_an_idle_runner(db_url: str, sink: Sink) -> None:
    # A long polling interval: only the NOTIFY can wake the runner in time.
    async with engine_for(db_url, sink.address, queue={"poll_interval": 30}) as eng:
        async with running(eng) as runner:
            await asyncio.wait_for(runner.ready.wait(), timeout=10)
            await enqueue(eng, ["wake@example.jp"])
            await wait_until(lambda: len(sink.handler.received) == 1, timeout=5)


async def test_metrics_endpoint_counts_deliveries_and_queue_depth(
    db_url: str, sink: Sink
) -> None:
    import urllib.request

    from engine.platform.metrics import serve_metrics

    port = free_port()
    async with engine_for(db_url, sink.address, metrics={"listen": f"127.0.0.1:{port}"}) as eng:
        serve_metrics(eng.settings.metrics.listen)
        await enqueue(eng, ["m1@example.jp", "reject-m2@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    text = await asyncio.to_thread(scrape)
    assert 'mamoru_deliveries_total{outcome="delivered"}' in text
    assert 'mamoru_deliveries_total{outcome="failed"}' in text
    assert 'mamoru_queue_depth{state="delivered"}' in text
    assert "mamoru_send_seconds_bucket" in text


async def test_every_outcome_is_written_once_under_load(
    db_url: str, sink: Sink, caplog: Any
) -> None:
    # Small flush batches and an idle exit make the writer task and the drain path flush at
    # the same time; each outcome must still be written exactly once.
    async with engine_for(
        db_url, sink.address, queue={"flush_batch": 7, "claim_batch": 50},
        delivery={"concurrency": 50},
    ) as eng:
        bid = await enqueue(eng, [f"load{i}@example.jp" for i in range(600)])
        runner = await eng.runner()
        with caplog.at_level("WARNING"):
            stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=60)
        rows = await eng.queue.deliveries_of(bid)
        logged = await eng.pool.fetchval("SELECT count(*) FROM delivery_attempts")
    assert "not written" not in caplog.text
    assert stats.delivered == 600
    assert all(r["state"] == "delivered" and r["attempts"] == 1 for r in rows)
    assert logged == 600


def _dkim_settings(tmp_path: Any, per_recipient: bool) -> tuple[dict[str, Any], dict[bytes, bytes]]:
    from engine.message.dkim import dns_record_name, generate_key

    path, record = generate_key("city.example.jp", "s1", tmp_path)
    name = dns_record_name("city.example.jp", "s1").encode() + b"."
    keys = [{"domain": "city.example.jp", "selector": "s1", "private_key": str(path)}]
    return {"keys": keys, "sign_per_recipient": per_recipient}, {name: record.encode()}


def _dkim_verifies(message: bytes, records: dict[bytes, bytes]) -> bool:
    import dkim

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name if name.endswith(b".") else name + b".")

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


async def _send_signed(db_url: str, sink: Sink, dkim_section: dict[str, Any]) -> list[bytes]:

    settings = make_settings(db_url, routing={"transport": {"*": sink.address}})
    eng = await Engine.open(replace(settings, dkim=dkim_section))
    try:
        await enqueue(eng, [f"g{i}@example.jp" for i in range(20)])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
    finally:
        await eng.close()
    return [r.data for r in sink.handler.received]


async def test_sent_mail_is_dkim_signed_once_per_broadcast_and_verifies(
    db_url: str, sink: Sink, tmp_path: Any
) -> None:
    section, records = _dkim_settings(tmp_path, per_recipient=False)
    mails = await _send_signed(db_url, sink, section)
    assert len(mails) == 20
    signatures = {message_from_bytes(m)["DKIM-Signature"] for m in mails}
    assert len(signatures) == 1  # one signature, computed once, on every mail
    [signature] = signatures
    h = signature.replace(" ", "").replace("\r\n", "").split("h=")[1].split(";")[0]
    assert "from" in h.split(":") and "to" not in h.split(":")
    assert all(_dkim_verifies(m, records) for m in mails)


async def test_sent_mail_can_be_signed_per_recipient_and_verifies(
    db_url: str, sink: Sink, tmp_path: Any
) -> None:
    section, records = _dkim_settings(tmp_path, per_recipient=True)
    mails = await _send_signed(db_url, sink, section)
    signatures = {message_from_bytes(m)["DKIM-Signature"] for m in mails}
    assert len(signatures) == 20
    h = next(iter(signatures)).replace(" ", "").replace("\r\n", "").split("h=")[1].split(";")[0]
    assert {"to", "message-id"} <= set(h.split(":"))
    assert all(_dkim_verifies(m, records) for m in mails)
    # The body hash was computed once: every signature carries the same bh=.
    assert len({s.split("bh=")[1].split(";")[0] for s in signatures}) == 1


async def test_missing_dkim_key_file_stops_the_engine_at_start(db_url: str, tmp_path: Any) -> None:

    from engine.platform.errors import DkimError

    keys = [{"domain": "city.example.jp", "selector": "s1",
             "private_key": str(tmp_path / "missing.pem")}]
    with pytest.raises(DkimError, match="missing.pem"):
        await Engine.open(replace(make_settings(db_url), dkim={"keys": keys}))


def test_dkim_section_errors_name_the_key() -> None:
    from engine.message.dkim import dkim_settings
    from engine.platform.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dkim\.keys\[0\]\.selector"):
        dkim_settings({"keys": [{"domain": "a.jp", "private_key": "k.pem"}]})
    with pytest.raises(ConfigError, match=r"unknown key dkim\.sign"):
        dkim_settings({"sign": True})


async def test_hard_failure_in_session_suppresses_the_address(db_url: str, sink: Sink) -> None:
    async with engine_for(db_url, sink.address) as eng:
        await enqueue(eng, ["reject-gone@example.jp", "ok@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        listed = await opened_rows(
            eng.pool, eng.queue.sealer, "SELECT address_sealed, reason, source FROM suppressions"
        )
        assert [(r["address"], r["reason"], r["source"]) for r in listed] == [
            ("reject-gone@example.jp", "userunknown", "smtp")
        ]
        tries_before = sink.handler.tries["reject-gone@example.jp"]
        bid = await enqueue(eng, ["reject-gone@example.jp", "ok@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        rows = await rows_by_recipient(eng, bid)
        counts = await eng.queue.broadcast_counts([bid])
    assert (rows["reject-gone@example.jp"]["state"], rows["reject-gone@example.jp"]["reason"]) == (
        "failed", "suppressed"
    )
    assert sink.handler.tries["reject-gone@example.jp"] == tries_before  # not tried again
    assert counts[0].suppressed_count == 1
    assert rows["ok@example.jp"]["state"] == "delivered"


async def test_cancel_stops_the_unsent_rest_of_a_broadcast_already_going_out(
    db_url: str, sink: Sink
) -> None:
    # "Stop, wrong school!": mails already on the wire finish, everything else waiting in the
    # runner's lanes is withdrawn and fails as cancelled; nothing more is sent.
    async with engine_for(db_url, sink.address, delivery={"concurrency": 200,
                                                          "connections_per_host": 2}) as eng:
        bid = await enqueue(eng, [f"slow{i}@example.jp" for i in range(400)])
        async with running(eng):
            await wait_until(lambda: len(sink.handler.received) >= 40, timeout=20)
            await eng.queue.cancel(bid, eng.clock.now())
            at_cancel = len(sink.handler.received)

            async def all_final() -> bool:
                rows = await eng.queue.deliveries_of(bid)
                return all(r["state"] in ("delivered", "failed") for r in rows)

            await wait_until(all_final, timeout=20)
        rows = await eng.queue.deliveries_of(bid)
    delivered = [r for r in rows if r["state"] == "delivered"]
    cancelled = [r for r in rows if r["reason"] == "cancelled"]
    assert len(delivered) + len(cancelled) == 400
    assert len(delivered) == len(sink.handler.received)
    # Only the mails on the wire while the runner heard of the cancel went out after it (it
    # held 200 in its lanes).
    assert len(sink.handler.received) - at_cancel <= 20
    assert len(cancelled) > 300


async def test_mail_from_a_domain_without_a_dkim_key_waits_and_is_never_sent_unsigned(
    db_url: str, sink: Sink
) -> None:
    settings = replace(make_settings(db_url, routing={"transport": {"*": sink.address}}),
                       dkim={})
    eng = await Engine.open(settings)
    try:
        bid = await enqueue(eng, ["unsigned@example.jp"])
        runner = await eng.runner()
        await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        (row,) = await eng.queue.deliveries_of(bid)
    finally:
        await eng.close()
    assert sink.handler.received == []
    assert row["state"] == "deferred"
    assert row["reason"] == "securityerror"
    assert "DKIM" in row["last_text"]
