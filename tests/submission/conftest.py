"""Fixtures for SMTP submission: the staff world (a board, two schools, their people), a
self-signed certificate made with ``cryptography`` and a submission server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sinks import free_port
from staff.conftest import World, world  # noqa: F401 - the fixture, reused

from engine.platform.config import Settings
from engine.staff import apikeys
from inbound.submission import SubmissionServer

DOMAIN = "mail.city.test"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "submit.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


@dataclass
class Submit:
    """The world with a submission server: its address, certificate and keys by school."""

    world: World
    server: SubmissionServer
    cert: Path
    keys: dict[str, str]

    @property
    def settings(self) -> Settings:
        return self.server.settings

    async def broadcasts(self) -> int:
        return await self.world.count("SELECT count(*) FROM broadcasts")


@pytest.fixture
async def submit(world: World, tmp_path: Path) -> AsyncIterator[Submit]:  # noqa: F811
    cert, key = self_signed(tmp_path)
    sub = replace(
        world.settings.submission, listen=f"127.0.0.1:{free_port()}", domain=DOMAIN,
        tls_cert=str(cert), tls_key=str(key), rate_per_minute=3,
    )
    settings = replace(world.settings, submission=sub)
    keys = {}
    for org in ("sho1", "sho2", "city"):
        keys[org], _ = await apikeys.create(
            world.api.staff, world.orgs[org], f"{org} 警報システム", None
        )
    server = SubmissionServer(settings, world.api.staff.pool, world.clock)
    await server.start()
    try:
        yield Submit(world, server, cert, keys)
    finally:
        await server.stop()
