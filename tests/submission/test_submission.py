"""SMTP submission end to end: an application submits over STARTTLS with an API key, the
broadcast is stored with the key's rights and delivered to a loopback sink; anything else is
refused with a clear reply and stores nothing."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sinks import Sink

from engine.delivery.context import Engine

from .conftest import DOMAIN, Submit


def mail(
    to: str, subject: str = "台風による臨時休校", body: str = "明日は臨時休校です。\n",
    **headers: str,
) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "みなみ小 <school@sho1.example.jp>"
    m["To"] = to
    m["Subject"] = subject
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m


async def client(s: Submit, key: str | None = None, tls: bool = True) -> aiosmtplib.SMTP:
    c = aiosmtplib.SMTP(
        hostname=s.server.host, port=s.server.port, timeout=10, start_tls=False,
        tls_context=ssl.create_default_context(cafile=str(s.cert)),
    )
    await c.connect()
    await c.ehlo()
    if tls:
        await c.starttls()
    if key is not None:
        await c.login("app", key)
    return c


async def send(s: Submit, key: str, message: EmailMessage) -> tuple[int, str]:
    """Submit one mail; the code and text of the final reply (or of the refusal)."""
    c = await client(s, key)
    try:
        errors, text = await c.send_message(message)
        return 250, text
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[0].code, exc.recipients[0].message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    finally:
        if c.is_connected:
            await c.quit()


async def swaks(s: Submit, key: str, to: str, data: Path) -> tuple[int, str]:
    exe = shutil.which("swaks")
    if exe is None:
        pytest.skip("swaks not installed: apt-get install swaks")
    proc = await asyncio.create_subprocess_exec(
        exe, "--server", s.server.host, "--port", str(s.server.port), "--tls",
        "--auth", "PLAIN", "--auth-user", "alarm", "--auth-password", key,
        "--from", "school@sho1.example.jp", "--to", to, "--helo", "alarm.sho1.test",
        "--timeout", "10", "--data", f"@{data}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    text = out.decode(errors="replace")
    if "requires Net::SSLeay" in text:
        pytest.skip("swaks cannot STARTTLS: apt-get install libnet-ssleay-perl")
    return proc.returncode or 0, text


async def test_swaks_submits_over_starttls_and_the_broadcast_reaches_a_sink(
    submit: Submit, tmp_path: Path
) -> None:
    data = tmp_path / "mail.eml"
    data.write_bytes(bytes(mail(f"grade3@sho1.{DOMAIN}", X_Mamoru_Category="緊急")))
    code, text = await swaks(submit, submit.keys["sho1"], f"grade3@sho1.{DOMAIN}", data)
    assert code == 0, text
    assert "<~  250 2.0.0" in text and "235 2.7.0" in text and "STARTTLS" in text, text
    row = await submit.world.api.staff.pool.fetchrow(
        "SELECT b.id, b.subject, b.sender, o.api_key_id FROM broadcasts b "
        "JOIN broadcast_owners o ON o.broadcast_id = b.id"
    )
    assert row["subject"] == "台風による臨時休校" and row["sender"] == "school@sho1.example.jp"
    assert row["api_key_id"] is not None
    assert await submit.world.count(
        "SELECT count(*) FROM audit_log WHERE action = 'broadcast.create' AND result = 'ok'"
    ) == 1
    with Sink() as sink:
        settings = replace(
            submit.settings,
            routing=replace(submit.settings.routing, transport={"*": sink.address}),
        )
        engine = await Engine.open(settings)
        try:
            runner = await engine.runner()
            await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=20)
        finally:
            await engine.close()
        got = sorted(m.rcpt for m in sink.handler.received)
    # sho1 grade 3: classes 1 and 2.
    assert got == ["hanako@ezweb.ne.jp", "jiro@softbank.ne.jp", "taro@docomo.ne.jp"]


async def test_an_unknown_group_address_is_refused_with_5xx_and_nothing_is_stored(
    submit: Submit, tmp_path: Path
) -> None:
    data = tmp_path / "mail.eml"
    data.write_bytes(bytes(mail(f"grade9@sho1.{DOMAIN}")))
    code, text = await swaks(submit, submit.keys["sho1"], f"grade9@sho1.{DOMAIN}", data)
    assert code != 0 and "<~* 550 5.1.1" in text and "グループアドレス" in text, text
    assert "unknown group address" in text
    for to in (f"all@nosuch.{DOMAIN}", "all@elsewhere.test", f"everyone@sho1.{DOMAIN}",
               f"group-nosuch@sho1.{DOMAIN}"):
        got, reply = await send(submit, submit.keys["sho1"], mail(to))
        assert got == 550 and "5.1.1" in reply, (to, reply)
    assert await submit.broadcasts() == 0


async def test_another_schools_key_is_refused_and_nothing_is_stored(
    submit: Submit, tmp_path: Path
) -> None:
    data = tmp_path / "mail.eml"
    data.write_bytes(bytes(mail(f"all@sho1.{DOMAIN}")))
    code, text = await swaks(submit, submit.keys["sho2"], f"all@sho1.{DOMAIN}", data)
    assert code != 0 and "<~* 550 5.7.1" in text and "may not send" in text, text
    assert await submit.broadcasts() == 0
    assert await submit.world.count(
        "SELECT count(*) FROM audit_log WHERE result = 'denied' AND actor_kind = 'api_key'"
    ) == 1
    # The board's key may send to a school and to the board's groups.
    got, reply = await send(submit, submit.keys["city"], mail(f"all@sho1.{DOMAIN}"))
    assert got == 250 and "2.0.0" in reply
    got, _ = await send(submit, submit.keys["city"], mail(f"all@{DOMAIN}"))
    assert got == 250
    assert await submit.broadcasts() == 2


async def test_auth_needs_starttls_and_a_valid_key(submit: Submit) -> None:
    c = await client(submit, tls=False)
    try:
        assert not c.supports_extension("auth")
        code, text = await c.execute_command(b"AUTH", b"PLAIN", b"AGFwcABrZXk=")
        assert code == 538 and "5.7.11" in text
        code, _ = await c.execute_command(b"MAIL", b"FROM:<a@sho1.example.jp>")
        assert code == 530
    finally:
        await c.quit()
    c = await client(submit)
    try:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as bad:
            await c.login("app", "mak_not-a-key")
        assert bad.value.code == 535 and "API" in bad.value.message
    finally:
        await c.quit()
    assert await submit.broadcasts() == 0


async def test_the_audience_header_category_and_priority_are_read(submit: Submit) -> None:
    got, reply = await send(submit, submit.keys["sho1"], mail(
        f"audience@sho1.{DOMAIN}", X_Mamoru_Audience="grade3-1, group-sho1見守り",
        X_Mamoru_Priority="emergency", X_Mamoru_Category="不審者情報",
    ))
    assert got == 250, reply
    row = await submit.world.api.staff.pool.fetchrow(
        "SELECT priority, recipient_count FROM broadcasts"
    )
    # 3-1: taro and hanako; the group: jiro.
    assert row["recipient_count"] == 3 and row["priority"] == 0
    got, reply = await send(submit, submit.keys["sho1"], mail(
        f"audience@sho1.{DOMAIN}", X_Mamoru_Audience="grade7",
    ))
    assert got == 550 and "grade7" in reply
    assert await submit.broadcasts() == 1


async def test_html_only_mail_and_attachments_are_refused(submit: Submit) -> None:
    html = EmailMessage()
    html["From"], html["To"], html["Subject"] = "a@sho1.example.jp", f"all@sho1.{DOMAIN}", "x"
    html.set_content("<p>休校</p>", subtype="html")
    with_file = mail(f"all@sho1.{DOMAIN}")
    with_file.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                             filename="a.pdf")
    for m in (html, with_file):
        got, reply = await send(submit, submit.keys["sho1"], m)
        assert got == 554 and "5.6.1" in reply and "text/plain" in reply
    # Plain text with an HTML alternative is fine: the plain part is sent.
    both = mail(f"all@sho1.{DOMAIN}", body="テキスト版\n")
    both.add_alternative("<p>HTML 版</p>", subtype="html")
    got, _ = await send(submit, submit.keys["sho1"], both)
    assert got == 250
    body = await submit.world.api.staff.pool.fetchval("SELECT body FROM broadcasts")
    assert body == "テキスト版\n"


async def test_the_same_message_id_twice_sends_once(submit: Submit) -> None:
    m = mail(f"grade4@sho1.{DOMAIN}", Message_ID="<alarm-1@sho1.example.jp>")
    first = await send(submit, submit.keys["sho1"], m)
    again = await send(submit, submit.keys["sho1"], m)
    assert first[0] == 250 and again[0] == 250 and "retry" in again[1]
    assert await submit.broadcasts() == 1


async def test_a_key_over_its_rate_gets_a_temporary_reply(submit: Submit) -> None:
    key = submit.keys["sho1"]
    codes = [(await send(submit, key, mail(f"grade4@sho1.{DOMAIN}")))[0] for _ in range(4)]
    assert codes == [250, 250, 250, 451]
    # Another key has its own count.
    assert (await send(submit, submit.keys["city"], mail(f"grade4@sho1.{DOMAIN}")))[0] == 250
    submit.world.clock.advance(61)
    assert (await send(submit, key, mail(f"grade4@sho1.{DOMAIN}")))[0] == 250
    assert await submit.broadcasts() == 5


async def test_an_oversized_mail_gets_552(submit: Submit) -> None:
    c = await client(submit, submit.keys["sho1"])
    try:
        assert int(c.esmtp_extensions["size"]) == submit.settings.submission.max_message_size
        big = mail(f"all@sho1.{DOMAIN}", body="あ" * 600_000)
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await c.send_message(big)
        assert refused.value.code == 552
    finally:
        if c.is_connected:
            await c.quit()
    assert await submit.broadcasts() == 0
