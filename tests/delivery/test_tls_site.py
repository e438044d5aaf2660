"""TLS required per site (delivery.tls_required naming a carrier) as well as per MX host."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from support import make_settings, opened_rows, wait_until

from cli import options
from delivery.test_delivery import SETTINGS, server, tls_context  # noqa: F401 (fixture)
from engine.delivery._smtp import SmtpTransport
from engine.delivery._smtp_session import SmtpSession
from engine.delivery._tls_policy import TlsPolicy
from engine.delivery._transport import Envelope, SendResult
from engine.delivery.context import Engine
from engine.delivery.preflight import check_settings
from engine.platform.config import load_settings
from engine.platform.errors import ConfigError
from engine.queue import NewBroadcast
from engine.queue.models import Outcome


def test_a_site_name_and_host_patterns_are_accepted_and_told_apart() -> None:
    policy = TlsPolicy.parse(["docomo", "Gmail", "mx1.example.jp", "*.mail.example.net"])
    assert policy.sites == {"docomo", "gmail"}
    assert policy.site_requiring("docomo.ne.jp", ()) == "docomo"
    # A school's Google Workspace domain is the gmail site by its MX hosts.
    assert policy.site_requiring("school.example.jp", ["aspmx.l.google.com"]) == "gmail"
    assert policy.site_requiring("ezweb.ne.jp", ()) is None
    assert policy.host_requiring("MX1.example.jp.") == "mx1.example.jp"
    assert policy.host_requiring("a.mail.example.net") == "*.mail.example.net"
    assert policy.host_requiring("mail.example.net") is None


def test_a_misspelt_site_is_a_configuration_error_that_names_it(tmp_path: Path) -> None:
    config = tmp_path / "mamoru.toml"
    config.write_text('[delivery]\ntls_required = ["docmo"]\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"'docmo'.*known site \(au, docomo"):
        check_settings(settings)


@pytest.mark.parametrize("entry", ["mx..example.jp", "mx example.jp", ""])
def test_an_unusable_host_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="delivery.tls_required"):
        TlsPolicy.parse([entry])


def test_a_site_added_in_shaping_profiles_can_be_named(tmp_path: Path) -> None:
    shaping = {"profiles": {"city_mail": {"domains": ["city.example.jp"]}}}
    policy = TlsPolicy.from_settings(["city_mail"], shaping)
    assert policy.site_requiring("city.example.jp", ()) == "city_mail"
    config = tmp_path / "mamoru.toml"
    config.write_text(
        '[delivery]\ntls_required = ["city_mail", "mx.example.jp"]\n'
        '[shaping.profiles.city_mail]\ndomains = ["city.example.jp"]\n',
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    check_settings(settings)
    assert settings.delivery.tls_required == ["city_mail", "mx.example.jp"]


def test_every_command_refuses_a_misspelt_site_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mamoru.toml"
    config.write_text('[delivery]\ntls_required = ["docmo"]\n', encoding="utf-8")
    with pytest.raises(typer.Exit) as exited:
        options.settings(config)
    assert exited.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.startswith("mamoru: error: delivery.tls_required: 'docmo'")
    assert err.count("\n") == 1


async def _open(dest: Any, tls_site: str | None) -> tuple[SendResult, bool | None]:
    opened = await SmtpTransport(SETTINGS).open([dest], tls_site=tls_site)
    if isinstance(opened, SendResult):
        return opened, None
    assert isinstance(opened, SmtpSession)
    try:
        mail = Envelope("b@city.example.jp", "p@docomo.ne.jp", b"Subject: t\r\n\r\nhi\r\n")
        return await opened.send(mail), opened.tls
    finally:
        await opened.close()


@pytest.mark.parametrize("mode", ["plain", "454", "garbage"])
def test_a_required_site_never_gets_plain_text(tls_context: ssl.SSLContext, mode: str) -> None:  # noqa: F811
    context = None if mode == "plain" else tls_context
    for recorder, dest in server("ok" if mode == "plain" else mode, context):
        result, _ = asyncio.run(_open(dest, "docomo"))
        assert result.outcome is Outcome.DEFERRED and result.command == "STARTTLS"
        assert "site docomo" in result.text and "平文では送らず" in result.text
        assert recorder.mails == []
        # The same server takes the mail in plain text when the site is not named.
        result, tls = asyncio.run(_open(dest, None))
        assert result.outcome is Outcome.DELIVERED and tls is False
        assert len(recorder.mails) == 1


def test_a_required_site_is_sent_over_tls_when_offered(tls_context: ssl.SSLContext) -> None:  # noqa: F811
    for recorder, dest in server("ok", tls_context):
        result, tls = asyncio.run(_open(dest, "docomo"))
        assert result.outcome is Outcome.DELIVERED and tls is True and result.tls is True
        assert recorder.tls_sessions == 1


async def _deliver(db_url: str, docomo: str, other: str) -> dict[str, dict[str, Any]]:
    settings = make_settings(
        db_url,
        routing={"transport": {"docomo.ne.jp": docomo, "*": other}},
        delivery={"tls_required": ["docomo"], "command_timeout": 2.0},
    )
    settings = replace(settings, queue=replace(settings.queue, retry_base=60.0, retry_max=60.0))
    eng = await Engine.open(settings)
    try:
        recipients = [f"d{i}@docomo.ne.jp" for i in range(5)] + ["g1@gmail.com"]
        bid = await eng.queue.enqueue(
            NewBroadcast("kyouiku@city.example.jp", "【緊急】休校", "本文\n", recipients),
            eng.clock.now(), eng.settings.queue.max_age,
        )
        runner = await eng.runner()
        task = asyncio.create_task(runner.run())
        try:
            async def settled() -> bool:
                rows = await eng.queue.deliveries_of(bid)
                return all(r["state"] in ("delivered", "deferred") for r in rows)

            await wait_until(settled, timeout=10)
        finally:
            runner.stop()
            await asyncio.wait_for(task, timeout=10)
        rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}
        attempts = await opened_rows(
            eng.pool, eng.queue.sealer,
            "SELECT d.recipient_sealed, a.tls FROM delivery_attempts a "
            "JOIN deliveries d ON d.id = a.delivery_id",
        )
        for a in attempts:
            rows[a["recipient"]]["tls"] = a["tls"]
        return rows
    finally:
        await eng.close()


async def test_mail_to_a_required_site_waits_when_its_servers_offer_no_starttls(
    db_url: str,
) -> None:
    plain = server("ok", None)
    recorder, dest = next(plain)
    try:
        address = f"{dest.host}:{dest.port}"
        rows = await _deliver(db_url, address, address)
    finally:
        plain.close()
    docomo = [r for name, r in rows.items() if name.endswith("@docomo.ne.jp")]
    assert len(docomo) == 5
    for r in docomo:
        assert r["state"] == "deferred" and r["attempts"] == 1
        assert r["reason"] == "failedstarttls" and "site docomo" in r["last_text"]
        assert r["tls"] is False
    # Only the other site's mail went, in plain text as before.
    assert len(recorder.mails) == 1 and recorder.tls_sessions == 0
    assert rows["g1@gmail.com"]["state"] == "delivered" and rows["g1@gmail.com"]["tls"] is False


async def test_mail_to_a_required_site_goes_over_tls_and_says_so(
    db_url: str, tls_context: ssl.SSLContext  # noqa: F811
) -> None:
    secure = server("ok", tls_context)
    recorder, dest = next(secure)
    try:
        rows = await _deliver(db_url, f"{dest.host}:{dest.port}", f"{dest.host}:{dest.port}")
    finally:
        secure.close()
    assert {r["state"] for r in rows.values()} == {"delivered"}
    assert all(r["tls"] is True for name, r in rows.items() if name.endswith("docomo.ne.jp"))
    assert len(recorder.mails) == 6
