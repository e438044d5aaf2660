"""What `send` refuses before storing anything, and what `serve` holds rather than send unsigned."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from commands import config_file, mamoru
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sinks import Sink
from typer.testing import CliRunner

from cli.main import app
from engine.message.checks import check_body, check_size, check_subject, size_cap
from engine.platform.errors import InputError
from engine.throttle.profiles import BUILTIN_PROFILES

LINE_BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", [*LINE_BREAKS, "\t", "\x00", "\x7f", "\x1b"])
def test_subject_with_a_line_break_or_control_character_is_refused(char: str) -> None:
    with pytest.raises(InputError, match=f"U\\+{ord(char):04X}") as caught:
        check_subject(f"臨時休校{char}のお知らせ")
    assert "\n" not in str(caught.value)


def test_ordinary_japanese_and_ascii_subjects_pass() -> None:
    check_subject("【緊急】台風接近に伴う臨時休校のお知らせ（市内全小中学校）")
    check_subject("School closed: typhoon (Nov. 23)")


def test_undecodable_subject_is_refused_as_not_utf8() -> None:
    # Python hands undecodable command-line bytes over as lone surrogates.
    with pytest.raises(InputError, match="UTF-8"):
        check_subject("お知らせ\udcff")


def test_body_with_nul_names_its_line() -> None:
    with pytest.raises(InputError, match="NUL") as caught:
        check_body("一行目\n二行目\0\n")
    assert "2" in str(caught.value)


def test_size_cap_is_the_smallest_of_the_audience_carriers() -> None:
    domains = ["i.softbank.jp", "ezweb.ne.jp", "gmail.com"]
    assert size_cap(domains, BUILTIN_PROFILES) == (1_000_000, "softbank")
    assert size_cap(["ezweb.ne.jp", "docomo.ne.jp"], BUILTIN_PROFILES) == (3_000_000, "au")
    assert size_cap(["gmail.com", "example.jp"], BUILTIN_PROFILES) is None
    with pytest.raises(InputError, match="リンク"):
        check_size(1_200_000, (1_000_000, "softbank"))
    check_size(900_000, (1_000_000, "softbank"))


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.txt"
    path.write_text("明日は臨時休校です。\n", encoding="utf-8")
    return path


def run_send(cfg: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["send", "-c", str(cfg), "--sender", "s@city.example.jp",
                                      *args])
    return result.exit_code, result.stderr


async def count_broadcasts(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM broadcasts")
        return n
    finally:
        await conn.close()


async def test_send_refuses_bad_subjects_and_bodies_with_one_line_and_stores_nothing(
    db_url: str, tmp_path: Path, body_file: Path
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:9")
    nul = tmp_path / "nul.txt"
    nul.write_bytes("本文\0です\n".encode())
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    cases = [
        ["--subject", "休校\u2028のお知らせ", "--body-file", str(body_file)],
        ["--subject", "休校\vのお知らせ", "--body-file", str(body_file)],
        ["--subject", "休校\udcffのお知らせ", "--body-file", str(body_file)],
        ["--subject", "お知らせ", "--body-file", str(nul)],
        ["--subject", "お知らせ", "--body-file", str(latin1)],
    ]
    for args in cases:
        code, stderr = await asyncio.to_thread(run_send, cfg, *args, "--to", "p@example.jp")
        assert code == 2, (args, stderr)
        assert stderr.startswith("mamoru: error: ") and stderr.count("\n") == 1, stderr
        assert "Traceback" not in stderr
    assert await count_broadcasts(db_url) == 0


async def test_send_refuses_a_mail_over_the_smallest_carrier_cap(
    db_url: str, tmp_path: Path
) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:9")
    big = tmp_path / "big.txt"
    big.write_text("あ" * 400_000, encoding="utf-8")  # 1.2 MB of text, ~1.6 MB in base64
    code, stderr = await asyncio.to_thread(
        run_send, cfg, "--subject", "写真", "--body-file", str(big),
        "--to", "p@docomo.ne.jp", "--to", "q@i.softbank.jp",
    )
    assert code == 2 and "softbank" in stderr and "リンク" in stderr
    assert await count_broadcasts(db_url) == 0
    code, stderr = await asyncio.to_thread(
        run_send, cfg, "--subject", "写真", "--body-file", str(big), "--to", "p@docomo.ne.jp",
    )
    assert code == 0, stderr  # docomo publishes no cap
    assert await count_broadcasts(db_url) == 1


async def test_missing_dkim_key_warns_and_holds_that_mail_while_serve_sends_the_rest(
    db_url: str, tmp_path: Path, body_file: Path
) -> None:
    key = tmp_path / "school.pem"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    with Sink() as sink:
        cfg = config_file(tmp_path, db_url, sink.address)
        strict = tmp_path / "strict.toml"
        strict.write_text(
            cfg.read_text().replace(
                "allow_unsigned = true",
                "allow_unsigned = false\n[[dkim.keys]]\ndomain = \"school.example.jp\"\n"
                f"selector = \"s1\"\nprivate_key = \"{key}\"\nalgorithm = \"ed25519-sha256\"",
            ),
            encoding="utf-8",
        )
        code, stderr = await asyncio.to_thread(
            run_send, strict, "--subject", "お知らせ", "--body-file", str(body_file),
            "--to", "p@example.jp",
        )
        assert code == 0
        assert "warning" in stderr and "city.example.jp" in stderr and "allow_unsigned" in stderr
        signed = await asyncio.to_thread(
            mamoru, "send", "-c", strict, "--sender", "info@school.example.jp", "--subject",
            "臨時休校", "--body-file", body_file, "--to", "q@example.jp",
        )
        assert signed.returncode == 0, signed.stderr
        # One careless broadcast never stops everyone's mail: serve starts, says why the
        # unsigned one waits, and sends the rest.
        served = await asyncio.to_thread(mamoru, "serve", "-c", strict, "--exit-when-idle")
        assert served.returncode == 0, served.stderr
        assert "city.example.jp" in served.stderr and "保留" in served.stderr
        assert [m.rcpt for m in sink.handler.received] == ["q@example.jp"]
        assert b"DKIM-Signature:" in sink.handler.received[0].data
    conn = await asyncpg.connect(db_url)
    try:
        held = await conn.fetchrow(
            "SELECT state, last_text FROM deliveries WHERE broadcast_id = 1")
    finally:
        await conn.close()
    assert held["state"] == "deferred" and "DKIM" in held["last_text"]
