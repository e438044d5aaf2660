"""serve's front services include the submission server when [submission] listen is set,
and the audit prune always; both stop with serve."""

from __future__ import annotations

import aiosmtplib
from sinks import free_port
from support import make_settings

from cli.services import front_services
from engine.delivery.context import Engine
from engine.platform.sealing import new_key_text


async def test_front_services_start_the_submission_server(db_url: str) -> None:
    port = free_port()
    settings = make_settings(
        db_url, people={"key": new_key_text()}, inbound={"listen": ""}, http={"listen": ""},
        submission={"listen": f"127.0.0.1:{port}", "domain": "mail.test",
                    "allow_plain_auth": True},
    )
    engine = await Engine.open(settings)
    try:
        services = await front_services(engine)
        try:
            # read reminders, broadcast log lines, submission, audit prune, queue retention
            assert len(services) == 5
            c = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
            await c.connect()
            await c.ehlo()
            # Loopback with allow_plain_auth: AUTH is offered without STARTTLS.
            assert c.supports_extension("auth")
            code, _ = await c.execute_command(b"MAIL", b"FROM:<a@mail.test>")
            assert code == 530  # authentication first
            await c.quit()
        finally:
            for s in reversed(services):
                await s.stop()
    finally:
        await engine.close()
