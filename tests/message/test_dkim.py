"""DKIM signing: signatures verify with dkimpy and with OpenDKIM, keys are checked up front."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.header import Header
from pathlib import Path

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.dkim_cmd import app
from engine.message.dkim import (
    DkimKey,
    DkimSigner,
    dns_record_name,
    generate_key,
    txt_record_strings,
)
from engine.platform.clock import FakeClock
from engine.platform.errors import DkimError

DOMAIN = "school.example.jp"
SUBJECT = "【緊急】台風接近に伴う臨時休校のお知らせ（市内全小中学校）明日の登校について"
BODY_TEXT = (
    "保護者の皆様\n\n台風の接近に伴い、明日は臨時休校といたします。\n"
    "今後の情報は学校ホームページでお知らせします。\n"
) * 8

Records = dict[str, str]


# --- helpers -----------------------------------------------------------------------------


def header_block(
    to: str = "parent@example.net",
    message_id: str = "<20261122.1@school.example.jp>",
    subject: str = SUBJECT,
    extra: str = "",
) -> bytes:
    encoded_subject = Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return (
        f"From: =?utf-8?b?5biC56uL5bCP5a2m5qCh?= <info@{DOMAIN}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {encoded_subject}\r\n"
        "Date: Sun, 22 Nov 2026 19:00:00 +0900\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "X-Mailer: mamoru\r\n"
        f"{extra}"
    ).encode()


def body(text: str = BODY_TEXT) -> bytes:
    return base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")


def signed_message(signer: DkimSigner, headers: bytes, body_bytes: bytes) -> bytes:
    signature = signer.sign(headers, signer.prepare_body(body_bytes), DOMAIN)
    return signature + headers + b"\r\n" + body_bytes


def dnsfunc_for(records: Records) -> Callable[..., bytes | None]:
    """The one faked seam: a DNS TXT lookup answered from the generated records."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(name.decode().rstrip("."))
        return value.encode() if value is not None else None

    return lookup


def verifies(message: bytes, records: Records, index: int = 0) -> bool:
    """Whether dkimpy accepts the index-th DKIM-Signature (dkim.verify() checks only the first)."""
    if index == 0:
        return bool(dkim.verify(message, dnsfunc=dnsfunc_for(records)))
    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc_for(records)))
    except dkim.DKIMException:
        return False


def signature_tags(signature_header: bytes) -> dict[bytes, bytes]:
    value = signature_header.split(b":", 1)[1]
    tags: dict[bytes, bytes] = dkim.util.parse_tag_value(value.replace(b"\r\n", b""))
    return tags


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dkim-keys")


@pytest.fixture(scope="module")
def records() -> Records:
    return {}


@pytest.fixture(scope="module")
def rsa_key(key_dir: Path, records: Records) -> DkimKey:
    path, record = generate_key(DOMAIN, "rsa2026", key_dir)
    records[dns_record_name(DOMAIN, "rsa2026")] = record
    return DkimKey(DOMAIN, "rsa2026", path)


@pytest.fixture(scope="module")
def ed_key(key_dir: Path, records: Records) -> DkimKey:
    path, record = generate_key(DOMAIN, "ed2026", key_dir, algorithm="ed25519-sha256")
    records[dns_record_name(DOMAIN, "ed2026")] = record
    return DkimKey(DOMAIN, "ed2026", path, "ed25519-sha256")


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    # Verifiers reject a t= far in the future, so start from the real time.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def rsa_signer(rsa_key: DkimKey, clock: FakeClock) -> DkimSigner:
    return DkimSigner([rsa_key], clock)


@pytest.fixture(scope="module")
def ed_signer(ed_key: DkimKey, clock: FakeClock) -> DkimSigner:
    return DkimSigner([ed_key], clock)


@pytest.fixture(scope="module")
def dual_signer(rsa_key: DkimKey, ed_key: DkimKey, clock: FakeClock) -> DkimSigner:
    return DkimSigner([rsa_key, ed_key], clock)


class _NaclBadSignature(Exception):
    pass


class _Ed25519VerifyKey:
    """The two calls dkimpy makes on pynacl's VerifyKey, done by `cryptography` instead."""

    def __init__(self, key: bytes, encoder: object = None) -> None:
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise _NaclBadSignature from exc


@pytest.fixture
def dkimpy_verifies_ed25519(monkeypatch: pytest.MonkeyPatch) -> None:
    """dkimpy verifies Ed25519 through the optional pynacl, which the venv does not have.

    Without it we hand dkimpy a stand-in built on `cryptography`: dkimpy still does the
    parsing, canonicalisation and hashing being checked; only the final curve check moves.
    """
    try:
        import nacl.signing  # noqa: F401
    except ImportError:
        stand_in = types.SimpleNamespace(
            signing=types.SimpleNamespace(VerifyKey=_Ed25519VerifyKey),
            encoding=types.SimpleNamespace(Base64Encoder=None),
            exceptions=types.SimpleNamespace(
                ValueError=ValueError, BadSignatureError=_NaclBadSignature
            ),
        )
        monkeypatch.setattr(dkim, "nacl", stand_in, raising=False)


# --- signatures verify with dkimpy -------------------------------------------------------


def test_rsa_signed_japanese_message_verifies_with_dkimpy(
    rsa_signer: DkimSigner, records: Records
) -> None:
    message = signed_message(rsa_signer, header_block(), body())
    assert message.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert verifies(message, records)


def test_ed25519_signed_japanese_message_verifies_with_dkimpy(
    ed_signer: DkimSigner, records: Records, dkimpy_verifies_ed25519: None
) -> None:
    message = signed_message(ed_signer, header_block(), body())
    assert message.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert verifies(message, records)
    assert not verifies(message.replace(b"To: parent@", b"To: other@"), records)


def test_rsa_and_ed25519_keys_of_one_domain_give_two_signatures_that_both_verify(
    dual_signer: DkimSigner, records: Records, dkimpy_verifies_ed25519: None
) -> None:
    message = signed_message(dual_signer, header_block(), body())
    assert message.count(b"DKIM-Signature:") == 2
    assert verifies(message, records, index=0)
    assert verifies(message, records, index=1)


def test_one_prepared_body_serves_fifty_recipients(
    rsa_signer: DkimSigner, records: Records
) -> None:
    body_bytes = body()
    prepared = rsa_signer.prepare_body(body_bytes)
    for n in range(50):
        headers = header_block(
            to=f"parent{n}@example.net", message_id=f"<20261122.{n}@school.example.jp>"
        )
        message = rsa_signer.sign(headers, prepared, DOMAIN) + headers + b"\r\n" + body_bytes
        assert verifies(message, records), f"recipient {n} does not verify"


def test_tampered_body_fails_verification(rsa_signer: DkimSigner, records: Records) -> None:
    message = signed_message(rsa_signer, header_block(), body())
    tampered = message.replace(body(), body(BODY_TEXT.replace("臨時休校", "通常登校")))
    assert tampered != message
    assert not verifies(tampered, records)


def test_changed_recipient_fails_verification(rsa_signer: DkimSigner, records: Records) -> None:
    message = signed_message(rsa_signer, header_block(), body())
    assert not verifies(message.replace(b"To: parent@", b"To: other@"), records)


def test_a_second_from_added_in_transit_breaks_the_signature(
    rsa_signer: DkimSigner, records: Records
) -> None:
    headers = header_block()
    signature = rsa_signer.sign(headers, rsa_signer.prepare_body(body()), DOMAIN)
    forged = signature + headers + b"From: attacker@example.com\r\n\r\n" + body()
    assert not verifies(forged, records)


def test_every_signed_field_is_listed_once_more_than_present(rsa_signer: DkimSigner) -> None:
    headers = header_block(extra="List-Unsubscribe: <https://school.example.jp/u/1>\r\n")
    signature = rsa_signer.sign(headers, rsa_signer.prepare_body(body()), DOMAIN)
    signed = [h.strip() for h in signature_tags(signature)[b"h"].split(b":")]
    present = [
        b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
        b"content-type", b"content-transfer-encoding", b"list-unsubscribe",
    ]  # fmt: skip
    for name in present:
        assert signed.count(name) == 2, name
    for name in (b"reply-to", b"cc", b"list-unsubscribe-post", b"sender"):
        assert signed.count(name) == 1, name  # absent: listed once, so it cannot be added
    assert b"x-mailer" not in signed


@pytest.mark.parametrize(
    "added",
    [
        b"Reply-To: attacker@example.com\r\n",
        b"Subject: =?utf-8?b?5YWN6Zmk?=\r\n",
        b"To: attacker@example.com\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"Cc: attacker@example.com\r\n",
    ],
    ids=["reply-to", "second-subject", "second-to", "list-unsubscribe-post", "cc"],
)
def test_a_field_added_after_signing_breaks_the_signature(
    rsa_signer: DkimSigner, records: Records, added: bytes
) -> None:
    headers = header_block()
    signature = rsa_signer.sign(headers, rsa_signer.prepare_body(body()), DOMAIN)
    genuine = signature + headers + b"\r\n" + body()
    assert verifies(genuine, records)
    # Added at the end (after the signed ones, as a relay would) and at the top.
    assert not verifies(signature + headers + added + b"\r\n" + body(), records)
    assert not verifies(signature + added + headers + b"\r\n" + body(), records)


def test_fields_left_out_of_a_shared_signature_are_neither_signed_nor_listed(
    rsa_signer: DkimSigner, records: Records
) -> None:
    common = header_block().replace(b"To: parent@example.net\r\n", b"").replace(
        b"Message-ID: <20261122.1@school.example.jp>\r\n", b""
    )
    leave_out = frozenset({b"to", b"message-id"})
    signature = rsa_signer.sign(common, rsa_signer.prepare_body(body()), DOMAIN, leave_out)
    signed = signature_tags(signature)[b"h"].replace(b" ", b"").split(b":")
    assert b"to" not in signed and b"message-id" not in signed
    own = b"To: parent@example.net\r\nMessage-ID: <1.2@school.example.jp>\r\n"
    assert verifies(signature + own + common + b"\r\n" + body(), records)


def test_signature_expires_after_the_configured_time(rsa_key: DkimKey, records: Records) -> None:
    clock = FakeClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    signer = DkimSigner([rsa_key], clock, expiry=3600)
    signature = signer.sign(header_block(), signer.prepare_body(body()), DOMAIN)
    tags = signature_tags(signature)
    assert int(tags[b"x"]) - int(tags[b"t"]) == 3600
    # dkimpy checks x= against the real time: a signature of 2026-11-22 10:00 valid for an hour
    # has expired by the time anyone reads this, while one with the default 7 days has not.
    assert not verifies(signature + header_block() + b"\r\n" + body(), records)
    fresh = DkimSigner([rsa_key]).sign(header_block(), signer.prepare_body(body()), DOMAIN)
    assert int(signature_tags(fresh)[b"x"]) - int(signature_tags(fresh)[b"t"]) == 7 * 86400
    assert verifies(fresh + header_block() + b"\r\n" + body(), records)


def test_expiry_zero_gives_no_x_tag(rsa_key: DkimKey) -> None:
    signer = DkimSigner([rsa_key], expiry=0)
    signature = signer.sign(header_block(), signer.prepare_body(body()), DOMAIN)
    assert b"x" not in signature_tags(signature)


def test_signature_timestamp_comes_from_the_clock(rsa_key: DkimKey) -> None:
    clock = FakeClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    signer = DkimSigner([rsa_key], clock)
    signature = signer.sign(header_block(), signer.prepare_body(body()), DOMAIN)
    assert signature_tags(signature)[b"t"] == str(int(clock.now().timestamp())).encode()


def test_signature_header_lines_are_folded_to_72_columns(dual_signer: DkimSigner) -> None:
    signature = dual_signer.sign(header_block(), dual_signer.prepare_body(body()), DOMAIN)
    assert signature.endswith(b"\r\n")
    lines = signature[:-2].split(b"\r\n")
    assert all(len(line) <= 72 for line in lines)
    assert all(line.startswith((b"DKIM-Signature:", b" ")) for line in lines)


def test_body_with_bare_lf_is_hashed_as_it_goes_on_the_wire(rsa_signer: DkimSigner) -> None:
    crlf = body()
    assert rsa_signer.prepare_body(crlf.replace(b"\r\n", b"\n")) == rsa_signer.prepare_body(crlf)


def test_from_domain_without_a_key_gets_no_signature(rsa_signer: DkimSigner) -> None:
    prepared = rsa_signer.prepare_body(body())
    assert rsa_signer.sign(header_block(), prepared, "other.example.jp") == b""
    assert not rsa_signer.signs_for("other.example.jp")


def test_from_domain_matches_regardless_of_case(rsa_signer: DkimSigner) -> None:
    prepared = rsa_signer.prepare_body(body())
    assert rsa_signer.sign(header_block(), prepared, DOMAIN.upper()).startswith(b"DKIM-Signature")


def test_message_without_from_is_refused(rsa_signer: DkimSigner) -> None:
    headers = b"To: parent@example.net\r\nSubject: test\r\n"
    with pytest.raises(DkimError, match="no From header"):
        rsa_signer.sign(headers, rsa_signer.prepare_body(body()), DOMAIN)


# --- hypothesis: header values ----------------------------------------------------------

_word = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        st.characters(min_codepoint=0x3041, max_codepoint=0x30FF),  # kana
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # kanji
    ),
    min_size=1,
    max_size=12,
)
_space = st.sampled_from([" ", "  ", "\t", " \t ", "\r\n ", "\r\n\t", "\r\n  "])


@st.composite
def header_values(draw: st.DrawFn) -> str:
    words = draw(st.lists(_word, min_size=1, max_size=8))
    value = words[0]
    for word in words[1:]:
        value += draw(_space) + word
    return draw(st.sampled_from(["", " ", "\t"])) + value + draw(st.sampled_from(["", " ", "\t"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=header_values(), display_name=header_values(), list_id=header_values())
def test_any_printable_or_japanese_header_values_with_folding_still_verify(
    rsa_signer: DkimSigner, records: Records, subject: str, display_name: str, list_id: str
) -> None:
    headers = (
        f"From:{display_name} <info@{DOMAIN}>\r\n"
        f"To: parent@example.net\r\n"
        f"Subject:{subject}\r\n"
        f"List-Id:{list_id}\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()
    message = signed_message(rsa_signer, headers, body())
    assert verifies(message, records)


# --- OpenDKIM verifies independently -----------------------------------------------------

OPENDKIM_TESTMSG = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"

# Run inside `unshare --user --map-root-user --net --mount`: a private network namespace
# (only its own loopback) and a private mount namespace. There it serves the test's TXT
# records on 127.0.0.1:53 (dnspython builds the answers), bind-mounts a resolv.conf naming
# that server over /etc/resolv.conf, and runs opendkim-testmsg on each message. libopendkim
# asks the system resolver for keys and has no way to read them from a file, so this is how
# it gets our keys without touching the machine's DNS or any network.
_NAMESPACE_HELPER = r"""
import fcntl, json, socket, struct, subprocess, sys, threading
import dns.flags, dns.message, dns.rcode, dns.rdatatype, dns.rrset

testmsg, records_file, resolv_conf, *messages = sys.argv[1:]
records = json.loads(open(records_file).read())

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    # A new network namespace starts with its loopback down; `ip` may not be installed.
    ifreq = struct.pack("16sH14x", b"lo", 0)
    flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))

def serve():
    while True:
        data, peer = server.recvfrom(4096)
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        if name in records and question.rdtype == dns.rdatatype.TXT:
            value = records[name]
            strings = " ".join('"%s"' % value[i:i + 255] for i in range(0, len(value), 255))
            reply.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "TXT", strings))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        server.sendto(reply.to_wire(), peer)

threading.Thread(target=serve, daemon=True).start()
with open(resolv_conf, "w") as out:
    out.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
subprocess.run(["mount", "--bind", resolv_conf, "/etc/resolv.conf"], check=True)
results = []
for path in messages:
    with open(path, "rb") as message:
        done = subprocess.run([testmsg], stdin=message, capture_output=True, timeout=30)
    results.append({"rc": done.returncode, "error": done.stderr.decode(errors="replace").strip()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def opendkim_verify(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[list[bytes], Records], list[tuple[int, str]]]:
    """Verify messages with OpenDKIM's opendkim-testmsg; (exit code, error) per message."""
    if not os.access(OPENDKIM_TESTMSG, os.X_OK):
        pytest.skip("opendkim-tools not installed: apt-get install opendkim-tools")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux `unshare` not found, needed to give OpenDKIM a private DNS")
    namespace = [unshare, "--user", "--map-root-user", "--net", "--mount"]
    probe = subprocess.run([*namespace, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(
            "cannot create user/net/mount namespaces for OpenDKIM's private DNS "
            f"({probe.stderr.strip()}): allow unprivileged user namespaces to run this check"
        )
    work = tmp_path_factory.mktemp("opendkim")
    helper = work / "fake_dns_and_testmsg.py"
    helper.write_text(_NAMESPACE_HELPER)

    def run(messages: list[bytes], records: Records) -> list[tuple[int, str]]:
        (work / "records.json").write_text(json.dumps(records))
        paths = []
        for n, message in enumerate(messages):
            path = work / f"message{n}.eml"
            path.write_bytes(message)
            paths.append(str(path))
        done = subprocess.run(
            [*namespace, sys.executable, str(helper), OPENDKIM_TESTMSG,
             str(work / "records.json"), str(work / "resolv.conf"), *paths],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"OpenDKIM harness failed: {done.stderr}"
        return [(r["rc"], r["error"]) for r in json.loads(done.stdout)]

    return run


def _without_signature(message: bytes, index: int) -> bytes:
    """The message with its index-th DKIM-Signature header (and continuation lines) removed."""
    starts = [m.start() for m in re.finditer(rb"^DKIM-Signature:", message, re.MULTILINE)]
    start = starts[index]
    end = re.compile(rb"\r\n(?![ \t])").search(message, start)
    assert end is not None
    return message[:start] + message[end.end() :]


def test_rsa_ed25519_and_double_signatures_verify_with_opendkim(
    rsa_signer: DkimSigner,
    ed_signer: DkimSigner,
    dual_signer: DkimSigner,
    records: Records,
    opendkim_verify: Callable[[list[bytes], Records], list[tuple[int, str]]],
) -> None:
    headers, body_bytes = header_block(), body()
    both = signed_message(dual_signer, headers, body_bytes)
    messages = {
        "rsa": signed_message(rsa_signer, headers, body_bytes),
        "ed25519": signed_message(ed_signer, headers, body_bytes),
        "both": both,
        # Each signature of the pair on its own, so one good one cannot hide a bad one.
        "rsa of both": _without_signature(both, 1),
        "ed25519 of both": _without_signature(both, 0),
    }
    results = opendkim_verify(list(messages.values()), records)
    assert dict(zip(messages, results, strict=True)) == {name: (0, "") for name in messages}


def test_opendkim_rejects_a_tampered_body_and_a_changed_recipient(
    rsa_signer: DkimSigner,
    ed_signer: DkimSigner,
    records: Records,
    opendkim_verify: Callable[[list[bytes], Records], list[tuple[int, str]]],
) -> None:
    tampered_body = body(BODY_TEXT.replace("臨時休校", "通常登校"))
    messages = [
        signed_message(signer, header_block(), body()).replace(body(), tampered_body)
        for signer in (rsa_signer, ed_signer)
    ] + [
        signed_message(signer, header_block(), body()).replace(b"To: parent@", b"To: other@")
        for signer in (rsa_signer, ed_signer)
    ]
    for code, error in opendkim_verify(messages, records):
        assert code != 0
        assert "Bad signature" in error


def test_opendkim_verifies_personal_mail_and_rejects_fields_added_after_signing(
    rsa_signer: DkimSigner,
    records: Records,
    opendkim_verify: Callable[[list[bytes], Records], list[tuple[int, str]]],
) -> None:
    from engine.message.compose import build_template
    from engine.queue.models import BroadcastContent, Priority

    content = BroadcastContent(3, f"info@{DOMAIN}", SUBJECT, BODY_TEXT, Priority.EMERGENCY)
    template = build_template(
        content, FakeClock(datetime.now(UTC)), "", rsa_signer, secret=b"s" * 32,
        public_url="https://mail.school.example.jp", from_name="市立さくら小学校",
    )
    genuine = [template.render(f"parent{i}@example.net", i) for i in (1, 2)]
    top, _, rest = genuine[0].partition(b"\r\nTo: ")
    added = [
        top + b"\r\n" + field + b"\r\nTo: " + rest
        for field in (b"Reply-To: x@evil.example", b"Subject: =?UTF-8?B?5YWN6Zmk?=",
                      b"To: x@evil.example")
    ]
    results = opendkim_verify(genuine + added, records)
    assert results[:2] == [(0, ""), (0, "")]
    assert all(code != 0 for code, _ in results[2:])


# --- key files ---------------------------------------------------------------------------


def test_missing_key_file_is_reported_with_the_keygen_command(tmp_path: Path) -> None:
    missing = tmp_path / "school.example.jp.pem"
    with pytest.raises(DkimError, match="not found") as caught:
        DkimSigner([DkimKey(DOMAIN, "sel1", missing)])
    assert str(missing) in str(caught.value)
    assert f"mamoru dkim keygen {DOMAIN} sel1" in str(caught.value)


def test_corrupt_key_file_is_reported_by_name(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pem"
    corrupt.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DkimError, match="not a PEM private key") as caught:
        DkimSigner([DkimKey(DOMAIN, "sel1", corrupt)])
    assert str(corrupt) in str(caught.value)


def test_unreadable_key_file_is_reported_by_name(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.pem"
    directory.mkdir()
    with pytest.raises(DkimError, match="cannot be read") as caught:
        DkimSigner([DkimKey(DOMAIN, "sel1", directory)])
    assert str(directory) in str(caught.value)


def test_key_of_the_wrong_kind_is_reported(ed_key: DkimKey, rsa_key: DkimKey) -> None:
    with pytest.raises(DkimError, match="holds an Ed25519 key") as caught:
        DkimSigner([DkimKey(DOMAIN, "sel1", ed_key.private_key, "rsa-sha256")])
    assert str(ed_key.private_key) in str(caught.value)
    with pytest.raises(DkimError, match="RSA key"):
        DkimSigner([DkimKey(DOMAIN, "sel1", rsa_key.private_key, "ed25519-sha256")])


def test_encrypted_key_file_is_refused_with_advice(tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(DkimError, match="encrypted"):
        DkimSigner([DkimKey(DOMAIN, "sel1", encrypted, "ed25519-sha256")])


def test_unknown_algorithm_in_configuration_is_reported(rsa_key: DkimKey) -> None:
    bad = DkimKey(DOMAIN, "sel1", rsa_key.private_key, "rsa-sha1")  # type: ignore[arg-type]
    with pytest.raises(DkimError, match="rsa-sha256, ed25519-sha256"):
        DkimSigner([bad])


def test_two_keys_with_the_same_selector_are_refused(rsa_key: DkimKey) -> None:
    with pytest.raises(DkimError, match="own selector"):
        DkimSigner([rsa_key, DkimKey(DOMAIN, rsa_key.selector, rsa_key.private_key)])


def test_traditional_rsa_pem_key_is_accepted(
    tmp_path: Path, clock: FakeClock, records: Records
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "traditional.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    own_records = {
        **records,
        dns_record_name(DOMAIN, "legacy"): f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}",
    }
    signer = DkimSigner([DkimKey(DOMAIN, "legacy", path)], clock)
    assert verifies(signed_message(signer, header_block(), body()), own_records)


# --- key generation ----------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    path, record = generate_key(DOMAIN, "sel1", tmp_path / "keys")
    assert path == tmp_path / "keys" / f"{DOMAIN}.sel1.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert record.startswith("v=DKIM1; k=rsa; p=MII")
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048


def test_keygen_ed25519_record_holds_the_bare_public_key(tmp_path: Path) -> None:
    path, record = generate_key(DOMAIN, "ed1", tmp_path, algorithm="ed25519-sha256")
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert record == f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def test_keygen_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    path, _ = generate_key(DOMAIN, "sel1", tmp_path, algorithm="ed25519-sha256")
    before = path.read_bytes()
    with pytest.raises(DkimError, match="already exists") as caught:
        generate_key(DOMAIN, "sel1", tmp_path, algorithm="ed25519-sha256")
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("domain", "selector", "bits", "message"),
    [
        ("../etc", "sel1", 2048, "domain"),
        (DOMAIN, "sel 1", 2048, "selector"),
        (DOMAIN, "sel1", 512, "RSA key size 512"),
    ],
)
def test_keygen_rejects_unusable_names_and_sizes(
    tmp_path: Path, domain: str, selector: str, bits: int, message: str
) -> None:
    with pytest.raises(DkimError, match=message):
        generate_key(domain, selector, tmp_path, bits=bits)


def test_txt_record_is_split_into_strings_of_at_most_255_characters(tmp_path: Path) -> None:
    _, record = generate_key(DOMAIN, "big", tmp_path, bits=4096)
    strings = txt_record_strings(record)
    assert len(strings) > 1
    assert all(len(s) <= 255 for s in strings)
    assert "".join(strings) == record


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_keygen_command_prints_path_dns_record_and_what_to_do(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["keygen", DOMAIN, "sel1", "--dir", str(tmp_path), "--algorithm", "ed25519-sha256"]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / f"{DOMAIN}.sel1.pem"
    assert path.exists()
    output = result.output
    assert str(path) in output
    assert f"sel1._domainkey.{DOMAIN}" in output
    assert '"v=DKIM1; k=ed25519; p=' in output
    assert "DNS" in output and "公開" in output


def test_keygen_command_prints_a_long_rsa_record_unbroken_in_quoted_strings(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["keygen", DOMAIN, "sel1", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    quoted = re.search(r'("v=DKIM1; k=rsa; [^\n]*")', result.output)
    assert quoted is not None, result.output
    strings = re.findall(r'"([^"]*)"', quoted.group(1))
    assert all(len(s) <= 255 for s in strings)
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+", "".join(strings))


def test_keygen_command_refuses_to_overwrite_with_a_one_line_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    args = ["keygen", DOMAIN, "sel1", "--dir", str(tmp_path), "--algorithm", "ed25519-sha256"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_keygen_command_rejects_an_unknown_algorithm(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["keygen", DOMAIN, "sel1", "--dir", str(tmp_path), "--algorithm", "rsa-sha1"]
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: DKIM algorithm 'rsa-sha1' is not supported")
    assert len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


# --- the [dkim] section ------------------------------------------------------------------


def test_dkim_section_defaults_to_signing_each_mail_with_a_seven_day_expiry() -> None:
    from engine.message.dkim import dkim_settings

    settings = dkim_settings({})
    assert settings.sign_per_recipient and settings.expiry == 7 * 86400
    assert not settings.allow_unsigned and settings.signer() is None
    assert not dkim_settings({"shared_signature": True}).sign_per_recipient
    assert not dkim_settings({"sign_per_recipient": False}).sign_per_recipient


def test_configured_expiry_reaches_the_signatures(rsa_key: DkimKey) -> None:
    from engine.message.dkim import dkim_settings

    table = {"domain": DOMAIN, "selector": rsa_key.selector,
             "private_key": str(rsa_key.private_key)}
    signer = dkim_settings({"keys": [table], "expiry": "2h"}).signer()
    assert signer is not None
    tags = signature_tags(signer.sign(header_block(), signer.prepare_body(body()), DOMAIN))
    assert int(tags[b"x"]) - int(tags[b"t"]) == 7200
    assert dkim_settings({"keys": [table]}).unsigned_domains(
        ["School.Example.JP", "other.example.jp"]
    ) == ["other.example.jp"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"expiry": "10m"}, r"dkim\.expiry must be at least 1h"),
        ({"expiry": "soon"}, r"dkim\.expiry must be a duration"),
        ({"allow_unsigned": "yes"}, r"dkim\.allow_unsigned must be true or false"),
        ({"shared_signature": True, "sign_per_recipient": True}, "contradict"),
    ],
)
def test_dkim_section_errors_name_the_key_and_say_what_to_do(
    section: dict[str, object], message: str
) -> None:
    from engine.message.dkim import dkim_settings
    from engine.platform.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        dkim_settings(section)


# --- the fast paths agree with dkimpy --------------------------------------------------------

_field_names = st.sampled_from(["To", "Message-ID", "List-Unsubscribe", "X-Test", "Subject"])
_field_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"),
    max_size=40,
)


_folds = st.lists(st.tuples(_field_values, st.sampled_from(["\r\n ", "\r\n\t", "\r\n  "])),
                 max_size=2)


@given(st.lists(st.tuples(_field_names, _field_values, _folds), max_size=6))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_own_field_parsing_and_canonicalisation_match_dkimpy(
    fields: list[tuple[str, str, list[tuple[str, str]]]],
) -> None:
    """Also folded fields, like the template's List-Unsubscribe (continuation lines)."""
    from dkim.canonicalization import Relaxed

    from engine.message.dkim import _canonical_header, _parse_header_block

    block = "".join(
        f"{name}:{value}" + "".join(fold + more for more, fold in folds) + "\r\n"
        for name, value, folds in fields
    ).encode()
    parsed = _parse_header_block(block, DOMAIN)
    expected, _ = dkim.rfc822_parse(block + b"\r\n") if block else ([], b"")
    assert parsed == [(bytes(n), bytes(v)) for n, v in expected]
    for name, value in parsed:
        ((cname, cvalue),) = Relaxed.canonicalize_headers([(name, value)])
        assert _canonical_header(name, value) == cname + b":" + cvalue
