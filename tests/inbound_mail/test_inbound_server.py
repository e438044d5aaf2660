"""The inbound SMTP server on loopback: what it accepts, what it refuses, what it stores."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import ssl
from pathlib import Path

import aiosmtplib
import pytest
from inbound_helpers import (
    delivered_ids,
    engine_with_inbound,
    make_dsn,
    read_reply,
    smtp_send,
    verp_of,
)
from support import opened_row, opened_rows, wait_until


async def test_forged_verp_token_is_refused_at_rcpt(db_url: str) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.skip("swaks not installed: apt-get install swaks")
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["taro@docomo.ne.jp"])
        good = await verp_of(eng, ids["taro@docomo.ne.jp"])
        local, _, domain = good.partition("@")
        # Same delivery, one character of the token changed.
        forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
        # Another delivery's id with this delivery's token.
        other = f"b-{int(local.split('-')[1], 36) + 1:x}-{local.split('-')[2]}@{domain}"
        for rcpt, refused in ((forged, True), (other, True), (good, False)):
            proc = await asyncio.create_subprocess_exec(
                swaks, "--server", server.host, "--port", str(server.port), "--from", "",
                "--to", rcpt, "--helo", "mx.example.jp", "--timeout", "10",
                "--data", make_dsn(rcpt, "taro@docomo.ne.jp").decode(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
            text = out.decode(errors="replace")
            if refused:
                # swaks marks the server's refusal with "<**" and gives up before DATA.
                assert "<** 550 5.7.1" in text and proc.returncode != 0, text
                assert "-> DATA" not in text, text
            else:
                assert proc.returncode == 0 and "<-  250 2.0.0" in text, text
        count = await eng.pool.fetchval("SELECT count(*) FROM bounces")
    assert count == 1  # only the genuine one got through to DATA


async def test_relay_to_other_addresses_is_refused(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        code, text = await smtp_send(
            server, "spammer@example.com", ["victim@example.org"], b"Subject: hi\r\n\r\nhi\r\n"
        )
        assert code == 550 and "5.7.1" in text
        # A VERP-looking address with no valid token is no different.
        code, _ = await smtp_send(
            server, "", ["b-1-aaaaaaaaaa@city.example.jp"], b"Subject: x\r\n\r\nx\r\n"
        )
        assert code == 550
        assert await eng.pool.fetchval("SELECT count(*) FROM bounces") == 0
        assert await eng.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0


async def test_mail_to_a_service_address_is_stored(db_url: str) -> None:
    inbound = {"service_addresses": ["touroku@School.Example.jp"]}
    async with engine_with_inbound(db_url, inbound) as (eng, server):
        body = "Subject: touroku\r\n\r\n登録お願いします\r\n".encode()
        code, _ = await smtp_send(server, "haha@docomo.ne.jp", ["touroku@SCHOOL.example.JP"], body)
        assert code == 250
        row = await opened_row(
            eng.pool, eng.queue.sealer,
            "SELECT mail_from_sealed, rcpt, size, raw_sealed FROM inbound_messages",
        )
    assert row["mail_from"] == "haha@docomo.ne.jp"
    assert row["rcpt"] == "touroku@SCHOOL.example.JP"
    assert "登録お願いします".encode() in bytes(row["raw"])


async def test_dsn_marks_a_delivered_mail_failed_and_suppresses_the_address(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["ghost@example.jp", "fine@example.jp"])
        to = await verp_of(eng, ids["ghost@example.jp"])
        code, _ = await smtp_send(server, "", [to], make_dsn(to, "ghost@example.jp"))
        assert code == 250
        bounce = await opened_row(eng.pool, eng.queue.sealer, "SELECT * FROM bounces")
        rows = await opened_rows(eng.pool, eng.queue.sealer, "SELECT * FROM deliveries ORDER BY id")
        suppressed = await opened_rows(eng.pool, eng.queue.sealer, "SELECT * FROM suppressions")
    assert (bounce["delivery_id"], bounce["kind"], bounce["reason"], bounce["classified"]) == (
        ids["ghost@example.jp"], "dsn", "userunknown", True
    )
    assert bounce["rcpt"] == to and bounce["hard"] and bounce["status"] == "5.1.1"
    ghost, fine = rows
    assert (ghost["state"], ghost["reason"], ghost["category"], ghost["last_status"]) == (
        "failed", "userunknown", "unknown_user", "5.1.1"
    )
    assert "User unknown" in ghost["last_text"]
    assert fine["state"] == "delivered"
    assert [(s["address"], s["source"], s["category"]) for s in suppressed] == [
        ("ghost@example.jp", "bounce", "unknown_user")
    ]


async def test_delay_notice_and_auto_reply_leave_the_delivery_delivered(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["slow@example.jp", "away@example.jp"])
        to = await verp_of(eng, ids["slow@example.jp"])
        delayed = make_dsn(
            to, "slow@example.jp", status="4.4.1", action="delayed",
            diagnostic="451 4.4.1 connection timed out",
        )
        assert (await smtp_send(server, "", [to], delayed))[0] == 250
        to2 = await verp_of(eng, ids["away@example.jp"])
        vacation = (
            "From: away@example.jp\r\nTo: " + to2 + "\r\nSubject: =?utf-8?b?5LiN5Zyo?= 不在です\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n出張中です。\r\n"
        ).encode()
        assert (await smtp_send(server, "", [to2], vacation))[0] == 250
        states = {r["recipient"]: r["state"] for r in await opened_rows(
            eng.pool, eng.queue.sealer, "SELECT recipient_sealed, state FROM deliveries")}
        kinds = sorted(
            (r["kind"], r["reason"]) for r in await opened_rows(
                eng.pool, eng.queue.sealer, "SELECT * FROM bounces"
            )
        )
        suppressed = await eng.pool.fetchval("SELECT count(*) FROM suppressions")
    assert states == {"slow@example.jp": "delivered", "away@example.jp": "delivered"}
    assert ("autoreply", "vacation") in kinds and len(kinds) == 2
    assert suppressed == 0


async def test_malformed_mail_is_stored_unclassified_and_the_server_keeps_going(
    db_url: str,
) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["a@example.jp"])
        to = await verp_of(eng, ids["a@example.jp"])
        junk = [
            # Broken MIME: a multipart whose boundary never appears, with NULs.
            b"Content-Type: multipart/report; boundary=\"nope\"\r\n\r\n\x00\x01\x02--x\r\n",
            # Binary junk with no headers at all, and a very long line.
            bytes(range(1, 256)).replace(b"\n", b"").replace(b"\r", b"") * 200 + b"\r\n",
            # A bounce-looking mail that names no recipient.
            b"From: MAILER-DAEMON@mx.example.jp\r\nSubject: Undelivered Mail\r\n\r\n"
            b"Something went wrong with your mail.\r\n",
        ]
        for data in junk:
            code, text = await smtp_send(server, "", [to], data)
            assert code == 250, text
        rows = await opened_rows(
            eng.pool, eng.queue.sealer,
            "SELECT classified, delivery_id, raw_sealed FROM bounces ORDER BY id",
        )
        state = await eng.pool.fetchval("SELECT state FROM deliveries")
        # The next session is served as usual.
        code, _ = await smtp_send(server, "", [to], make_dsn(to, "a@example.jp"))
        assert code == 250
    assert [r["classified"] for r in rows] == [False, False, False]
    assert {r["delivery_id"] for r in rows} == {ids["a@example.jp"]}
    assert bytes(rows[0]["raw"]).startswith(b"Content-Type: multipart/report")
    assert state == "delivered"


async def test_over_size_mail_is_refused_with_552(db_url: str) -> None:
    async with engine_with_inbound(db_url, {"max_message_size": 4096}) as (eng, server):
        ids = await delivered_ids(eng, ["a@example.jp"])
        to = await verp_of(eng, ids["a@example.jp"])
        big = make_dsn(to, "a@example.jp") + b"x" * 100 + (b"y" * 900 + b"\r\n") * 20
        # Without SIZE= in MAIL FROM the server finds out while reading the data.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            assert (await read_reply(reader)).startswith(b"220")
            writer.write(b"EHLO mx.example.jp\r\n")
            ehlo = await read_reply(reader)
            assert b"SIZE 4096" in ehlo
            for command in (b"MAIL FROM:<>\r\n", f"RCPT TO:<{to}>\r\n".encode(), b"DATA\r\n"):
                writer.write(command)
                await read_reply(reader)
            writer.write(big + b".\r\n")
            assert (await read_reply(reader)).startswith(b"552")
            # Announced size over the limit: refused at MAIL.
            writer.write(b"MAIL FROM:<> SIZE=999999\r\n")
            assert (await read_reply(reader)).startswith(b"552")
        finally:
            writer.close()
        assert await eng.pool.fetchval("SELECT count(*) FROM bounces") == 0


@pytest.mark.slow
async def test_big_mail_within_a_raised_limit_is_taken_and_stored_truncated(db_url: str) -> None:
    limit = 25 * 1024 * 1024
    async with engine_with_inbound(db_url, {"max_message_size": limit}) as (eng, server):
        ids = await delivered_ids(eng, ["a@example.jp"])
        to = await verp_of(eng, ids["a@example.jp"])
        big = make_dsn(to, "a@example.jp") + (b"z" * 998 + b"\r\n") * (20 * 1024)
        code, text = await smtp_send(server, "", [to], big)
        assert code == 250, text
        raw_len = max(len(r["raw"]) for r in await opened_rows(
            eng.pool, eng.queue.sealer, "SELECT raw_sealed FROM bounces"))
    assert raw_len == 256 * 1024


async def test_connections_per_client_are_limited(db_url: str) -> None:
    async with engine_with_inbound(db_url, {"max_connections_per_client": 2}) as (eng, server):
        opened = []
        try:
            for _ in range(2):
                reader, writer = await asyncio.open_connection(server.host, server.port)
                opened.append(writer)
                assert (await read_reply(reader)).startswith(b"220")
            reader, writer = await asyncio.open_connection(server.host, server.port)
            opened.append(writer)
            assert (await read_reply(reader)).startswith(b"421 4.7.0")
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed by server
        finally:
            for w in opened:
                w.close()
        # Once the others are gone, the client is served again.
        await asyncio.gather(*(w.wait_closed() for w in opened), return_exceptions=True)

        async def admitted() -> bool:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                return (await read_reply(reader)).startswith(b"220")
            finally:
                writer.close()

        await wait_until(lambda: server.connections("127.0.0.1") == 0, timeout=5)
        assert await admitted()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("mx.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_starttls_with_a_generated_certificate(db_url: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    inbound = {"tls_cert": str(cert), "tls_key": str(key)}
    async with engine_with_inbound(db_url, inbound) as (eng, server):
        ids = await delivered_ids(eng, ["a@example.jp"])
        to = await verp_of(eng, ids["a@example.jp"])
        context = ssl.create_default_context(cafile=str(cert))
        client = aiosmtplib.SMTP(
            hostname=server.host, port=server.port, timeout=10, start_tls=False,
            tls_context=context,
        )
        await client.connect()
        try:
            await client.ehlo()
            assert client.supports_extension("starttls")
            await client.starttls()
            assert client.transport is not None
            assert client.transport.get_extra_info("ssl_object") is not None
            await client.sendmail("", [to], make_dsn(to, "a@example.jp"))
        finally:
            await client.quit()
        assert await eng.pool.fetchval("SELECT reason FROM bounces") == "userunknown"


async def test_database_error_answers_451_so_the_sender_retries(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["a@example.jp"])
        to = await verp_of(eng, ids["a@example.jp"])
        await eng.pool.execute("ALTER TABLE bounces RENAME TO bounces_gone")
        try:
            code, text = await smtp_send(server, "", [to], make_dsn(to, "a@example.jp"))
        finally:
            await eng.pool.execute("ALTER TABLE bounces_gone RENAME TO bounces")
        assert (code, text.split()[0]) == (451, "4.3.0")
        # Nothing half-written: the delivery is untouched, and the retry is taken.
        assert await eng.pool.fetchval("SELECT state FROM deliveries") == "delivered"
        code, _ = await smtp_send(server, "", [to], make_dsn(to, "a@example.jp"))
        assert code == 250
        assert await eng.pool.fetchval("SELECT state FROM deliveries") == "failed"


async def test_complaint_suppresses_without_failing_the_delivery(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["angry@example.jp"])
        to = await verp_of(eng, ids["angry@example.jp"])
        arf = (
            "From: fbl@isp.example\r\nTo: " + to + "\r\nSubject: complaint\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
            "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: abuse\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
            "Original-Rcpt-To: angry@example.jp\r\n"
            "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            "From: kyouiku@city.example.jp\r\nTo: angry@example.jp\r\n"
            "--b--\r\n"
        ).encode()
        assert (await smtp_send(server, "", [to], arf))[0] == 250
        state = await eng.pool.fetchval("SELECT state FROM deliveries")
        s = await opened_row(eng.pool, eng.queue.sealer, "SELECT * FROM suppressions")
    assert state == "delivered"
    assert (s["address"], s["reason"], s["source"], s["category"]) == (
        "angry@example.jp", "feedback", "complaint", "complaint"
    )
