"""The carrier simulator enforces its limits per source IP and answers like the carriers."""

from __future__ import annotations

import dataclasses
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from engine.platform.clock import FakeClock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from carriersim import DEFAULT_LIMITS, CarrierLimits, CarrierSim, ideal_seconds  # noqa: E402


def limits(name: str, **changes: Any) -> dict[str, CarrierLimits]:
    return {name: dataclasses.replace(DEFAULT_LIMITS[name], **changes)}


def message(rcpt: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "school@mamoru.example.jp"
    msg["To"] = rcpt
    msg["Subject"] = "test"
    msg.set_content("typhoon closure\n")
    return msg


def client(port: int, source: str) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        source_address=(source, 0),
        local_hostname="mamoru.example.jp",
        start_tls=False,
        timeout=5,
    )


async def test_connection_limit_is_per_source_ip() -> None:
    async with CarrierSim(limits("docomo", max_connections=2)) as sim:
        port = sim.ports["docomo"]
        open_ = [client(port, "127.0.0.2"), client(port, "127.0.0.2")]
        for c in open_:
            await c.connect()
        third = client(port, "127.0.0.2")
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as info:
            await third.connect()
        assert info.value.code == 421
        assert "Too many connections" in info.value.message
        other_ip = client(port, "127.0.0.3")
        await other_ip.connect()  # a different source IP has its own allowance
        await other_ip.sendmail("s@mamoru.example.jp", ["a@docomo.ne.jp"], message("a").as_bytes())
        for c in [*open_, other_ip]:
            await c.quit()
        stats = sim.stats()["docomo"]["sources"]
    assert stats["127.0.0.2"]["violations"] == {"connections": 1}
    assert stats["127.0.0.2"]["max_concurrent"] == 2
    assert stats["127.0.0.3"]["violations"] == {}
    assert stats["127.0.0.3"]["accepted"] == 1


async def test_rate_limit_is_per_source_ip_and_answered_with_450() -> None:
    clock = FakeClock()  # tokens refill only when the test says so
    sim_limits = limits("docomo", rate=1.0, burst=2.0)
    async with CarrierSim(sim_limits, clock=clock) as sim:
        port = sim.ports["docomo"]
        results = {}
        for source in ("127.0.0.2", "127.0.0.3"):
            smtp = client(port, source)
            await smtp.connect()
            sent = 0
            for i in range(3):
                try:
                    await smtp.sendmail(
                        "s@mamoru.example.jp", [f"u{i}@docomo.ne.jp"], message("u").as_bytes()
                    )
                    sent += 1
                except aiosmtplib.SMTPSenderRefused as exc:
                    assert exc.code == 450 and "rate limit" in exc.message
                    await smtp.rset()
            results[source] = sent
            await smtp.quit()
        clock.advance(1.0)
        smtp = client(port, "127.0.0.2")
        await smtp.connect()
        await smtp.sendmail("s@mamoru.example.jp", ["late@docomo.ne.jp"], message("x").as_bytes())
        await smtp.quit()
        stats = sim.stats()["docomo"]["sources"]
    assert results == {"127.0.0.2": 2, "127.0.0.3": 2}
    assert stats["127.0.0.2"]["accepted"] == 3
    assert stats["127.0.0.2"]["violations"] == {"rate": 1}
    assert stats["127.0.0.3"]["violations"] == {"rate": 1}


async def test_au_resets_excess_connections() -> None:
    async with CarrierSim(limits("au", max_connections=1)) as sim:
        port = sim.ports["au"]
        first = client(port, "127.0.0.2")
        await first.connect()
        second = client(port, "127.0.0.2")
        with pytest.raises((aiosmtplib.SMTPException, OSError)):
            await second.connect()
        await first.quit()
        stats = sim.stats()["au"]["sources"]["127.0.0.2"]
    assert stats["violations"] == {"connections": 1}
    assert stats["rejected_connections"] == 1


async def test_messages_per_connection_limit_closes_with_421() -> None:
    async with CarrierSim(limits("softbank", max_messages_per_connection=2)) as sim:
        smtp = client(sim.ports["softbank"], "127.0.0.2")
        await smtp.connect()
        for i in range(2):
            await smtp.sendmail("s@mamoru.example.jp", [f"u{i}@softbank.ne.jp"], b"x\r\n")
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await smtp.sendmail("s@mamoru.example.jp", ["u3@softbank.ne.jp"], b"x\r\n")
        assert info.value.code == 421
        stats = sim.stats()["softbank"]["sources"]["127.0.0.2"]
    assert stats["accepted"] == 2
    assert stats["violations"] == {"per_connection": 1}


async def test_unknown_users_get_550_and_repeat_offenders_are_blocked() -> None:
    sim_limits = limits("docomo", max_connections=1, block_after=2, block_seconds=60.0)
    clock = FakeClock()
    async with CarrierSim(sim_limits, clock=clock) as sim:
        port = sim.ports["docomo"]
        holder = client(port, "127.0.0.2")
        await holder.connect()
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
            await holder.sendmail("s@mamoru.example.jp", ["unknown1@docomo.ne.jp"], b"x\r\n")
        assert info.value.recipients[0].code == 550
        for _ in range(3):  # three connection violations: more than block_after
            with pytest.raises(aiosmtplib.SMTPConnectResponseError):
                await client(port, "127.0.0.2").connect()
        await holder.quit()
        blocked = client(port, "127.0.0.2")
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as info2:
            await blocked.connect()
        assert info2.value.code == 554
        clock.advance(61)
        again = client(port, "127.0.0.2")
        await again.connect()
        await again.quit()
        stats = sim.stats()["docomo"]["sources"]["127.0.0.2"]
    assert stats["blocks"] == 1
    assert stats["unknown_users"] == 1
    assert stats["blocked_replies"] == 1


def test_ideal_time_is_the_slowest_carrier_at_its_per_ip_rate() -> None:
    # docomo 20/s per IP, au 15/s per IP: 3000 au mails over 2 IPs take 100 s
    assert ideal_seconds({"docomo": 2000, "au": 3000}, source_ips=2) == pytest.approx(100.0)
    assert ideal_seconds({}, source_ips=1) == 0.0


async def test_data_of_any_size_and_dot_lines_is_received_and_counted() -> None:
    async with CarrierSim() as sim:
        smtp = client(sim.ports["other"], "127.0.0.2")
        await smtp.connect()
        big = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
        big = big * 200  # ~200 KB, far beyond the stream reader's 64 KiB line limit
        await smtp.sendmail("s@mamoru.example.jp", ["a@example.jp"], big)
        await smtp.sendmail("s@mamoru.example.jp", ["b@example.jp"], b".\r\n..\r\nend.\r\n")
        await smtp.sendmail("s@mamoru.example.jp", ['"foo..bar"@example.jp'], b"x\r\n")
        await smtp.quit()
        stats = sim.stats()["other"]["sources"]["127.0.0.2"]
    assert stats["accepted"] == 3
    assert stats["bytes"] > len(big)
