"""Micro-benchmark of DKIM signing: mamoru's signer against dkimpy's own `dkim.sign`.

Signs N messages of about 2 KB of Japanese text (one broadcast: one body, a different To and
Message-ID per recipient) with RSA-2048, and with --ed25519 also with Ed25519. The body hash
is prepared once, as the engine does; the timing covers `DkimSigner.sign` only. dkimpy signs
full messages (its API hashes the body every time and does RSA in pure Python).

    .venv/bin/python bench/dkim_sign.py [--messages 20000] [--dkimpy-messages 300] [--ed25519]

The last line printed is one JSON object:
{"signatures": N, "us_per_signature": X, "dkimpy_us_per_signature": Y}
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tempfile
import time
from email.header import Header
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine.message.dkim import (
    SIGNED_HEADERS,
    Algorithm,
    DkimKey,
    DkimSigner,
    dns_record_name,
    generate_key,
)
from engine.platform.clock import SystemClock

DOMAIN = "school.example.jp"
SUBJECT = "【緊急】台風接近に伴う臨時休校のお知らせ（市内全小中学校）"
PARAGRAPH = (
    "保護者の皆様へ。台風の接近に伴い、明日は市内全小中学校を臨時休校といたします。"
    "登校の必要はありません。学童保育の実施状況については各施設からご連絡いたします。"
    "今後の情報は学校ホームページおよび安全メールでお知らせします。\n"
)


def make_body() -> bytes:
    # About 2 KB of UTF-8 Japanese text, base64-encoded in 76-column CRLF lines as sent.
    text = PARAGRAPH * 6
    return base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")


def make_header_block(n: int) -> bytes:
    subject = Header(SUBJECT, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return (
        f"From: =?utf-8?b?5biC56uL5bCP5a2m5qCh?= <info@{DOMAIN}>\r\n"
        f"To: parent{n}@example.net\r\n"
        f"Subject: {subject}\r\n"
        "Date: Sun, 22 Nov 2026 19:00:00 +0900\r\n"
        f"Message-ID: <20261122.{n}@{DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"List-Unsubscribe: <https://{DOMAIN}/unsubscribe/{n}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    ).encode()


def time_ours(
    signer: DkimSigner, headers: list[bytes], body: bytes, records: dict[str, str]
) -> tuple[float, float]:
    """Seconds to prepare the body once, and seconds per signature over all headers."""
    started = time.perf_counter()
    prepared = signer.prepare_body(body)
    prepare_s = time.perf_counter() - started
    sign = signer.sign
    started = time.perf_counter()
    for header_block in headers:
        sign(header_block, prepared, DOMAIN)
    per_signature = (time.perf_counter() - started) / len(headers)
    # A benchmark of signatures that do not verify would measure nothing useful.
    sample = signer.sign(headers[0], prepared, DOMAIN) + headers[0] + b"\r\n" + body
    if b"a=rsa-sha256" in sample:
        assert dkim.verify(sample, dnsfunc=lambda name, timeout=5: _lookup(records, name))
    return prepare_s, per_signature


def _lookup(records: dict[str, str], name: bytes) -> bytes:
    return records[name.decode().rstrip(".")].encode()


def time_dkimpy(key: DkimKey, headers: list[bytes], body: bytes) -> float:
    """Seconds per signature for dkimpy's dkim.sign with the same key and header choice."""
    private = serialization.load_pem_private_key(key.private_key.read_bytes(), password=None)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    messages = [header_block + b"\r\n" + body for header_block in headers]
    include = list(SIGNED_HEADERS) + [b"from"]
    started = time.perf_counter()
    for message in messages:
        dkim.sign(
            message,
            key.selector.encode(),
            key.domain.encode(),
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
    return (time.perf_counter() - started) / len(messages)


def time_rsa_key_operation(key: DkimKey, count: int) -> float:
    """Seconds for the bare RSA private-key operation: the floor under any RSA signature."""
    private = serialization.load_pem_private_key(key.private_key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    digests = [hashlib.sha256(b"%d" % n).digest() for n in range(count)]
    pkcs1, prehashed = padding.PKCS1v15(), Prehashed(hashes.SHA256())
    started = time.perf_counter()
    for digest in digests:
        private.sign(digest, pkcs1, prehashed)
    return (time.perf_counter() - started) / count


def report(label: str, seconds: float, unit: str = "signature") -> None:
    print(f"{label:<34} {seconds * 1e6:9.1f} µs/{unit} {1 / seconds:10.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="signatures to time")
    parser.add_argument("--dkimpy-messages", type=int, default=300, help="dkimpy signatures")
    parser.add_argument("--ed25519", action="store_true", help="time Ed25519 signing too")
    args = parser.parse_args()

    body = make_body()
    headers = [make_header_block(n) for n in range(args.messages)]
    print(
        f"{args.messages} messages: header block ~{len(headers[0])} B, body {len(body)} B "
        f"(base64 of {len(PARAGRAPH.encode()) * 6} B of Japanese text)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        records: dict[str, str] = {}

        def key(selector: str, algorithm: Algorithm) -> DkimKey:
            path, record = generate_key(DOMAIN, selector, Path(tmp), algorithm=algorithm)
            records[dns_record_name(DOMAIN, selector)] = record
            return DkimKey(DOMAIN, selector, path, algorithm)

        rsa_key = key("rsa", "rsa-sha256")
        prepare_s, ours = time_ours(DkimSigner([rsa_key], SystemClock()), headers, body, records)
        print(f"body hash, once per broadcast      {prepare_s * 1e6:9.1f} µs")
        report("mamoru RSA-2048", ours)
        report("  of which the RSA operation alone", time_rsa_key_operation(rsa_key, 2000))
        result: dict[str, float | int] = {"signatures": args.messages}
        result["us_per_signature"] = round(ours * 1e6, 1)
        if args.ed25519:
            ed_key = key("ed", "ed25519-sha256")
            _, ed = time_ours(DkimSigner([ed_key], SystemClock()), headers, body, records)
            report("mamoru Ed25519", ed)
            _, both = time_ours(
                DkimSigner([rsa_key, ed_key], SystemClock()), headers, body, records
            )
            report("mamoru RSA-2048 + Ed25519, 2 sigs", both, unit="mail")
            result["ed25519_us_per_signature"] = round(ed * 1e6, 1)
        theirs = time_dkimpy(rsa_key, headers[: args.dkimpy_messages], body)
        report(f"dkimpy dkim.sign RSA-2048 (n={args.dkimpy_messages})", theirs)
        print(f"mamoru is {theirs / ours:.1f}x faster than dkimpy per RSA signature")
        result["dkimpy_us_per_signature"] = round(theirs * 1e6, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
