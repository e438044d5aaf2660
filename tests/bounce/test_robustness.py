"""parse_bounce never raises and bounds its work, whatever it is given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bounce import classify_reply, parse_bounce


@given(st.binary(max_size=4096))
@settings(max_examples=200, deadline=None)
def test_random_bytes_never_raise(raw: bytes) -> None:
    report = parse_bounce(raw)
    assert report.kind in ("dsn", "nonstandard", "arf", "autoreply", "unknown")


@given(st.text(max_size=2000))
@settings(max_examples=100, deadline=None)
def test_random_text_after_bounce_headers_never_raises(body: str) -> None:
    raw = ("From: MAILER-DAEMON@example.jp\r\nSubject: failure notice\r\n\r\n" + body).encode(
        "utf-8", "surrogatepass"
    )
    parse_bounce(raw)


def test_empty_input_is_unknown() -> None:
    assert parse_bounce(b"").kind == "unknown"


def test_binary_junk_is_unknown() -> None:
    assert parse_bounce(bytes(range(256)) * 50).kind == "unknown"


def test_broken_mime_boundary_still_yields_the_report_text() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.jp\r\n"
        b"Subject: Delivery failure\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="MISSING"\r\n\r\n'
        b"Final-Recipient: rfc822; lost@example.jp\r\n"
        b"Action: failed\r\n"
        b"Status: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
    )
    report = parse_bounce(raw)
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("lost@example.jp", "userunknown")
    ]


def test_deeply_nested_multipart_does_not_raise() -> None:
    head = b"From: MAILER-DAEMON@example.jp\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
    raw = head
    for depth in range(500):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (depth, depth)
    assert parse_bounce(raw).kind in ("unknown", "nonstandard")


def test_twenty_megabyte_bounce_is_classified_from_its_head() -> None:
    head = (
        b"From: MAILER-DAEMON@mx.example.org\r\n"
        b"Subject: failure notice\r\n\r\n"
        b"<big@example.org>:\r\n"
        b"Remote host said: 552 5.2.2 <big@example.org>... Mailbox full\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Subject: attachment\r\n\r\n"
    )
    raw = head + (b"A" * 76 + b"\r\n") * (20 * 1024 * 1024 // 78)
    assert len(raw) > 20_000_000
    report = parse_bounce(raw)
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("big@example.org", "mailboxfull")
    ]


def test_garbage_headers_and_undecodable_encoded_words_do_not_raise() -> None:
    raw = (
        b"From: =?x-unknown?B?////?= <\xff\xfe@@>\r\n"
        b"Subject: =?ISO-2022-JP?B?GyRC?=\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n"
        b"\xff\xfe\x00 550 5.1.1 <x@example.jp> user unknown\r\n"
    )
    report = parse_bounce(raw)
    assert report.kind in ("unknown", "nonstandard")


@given(
    st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.text(max_size=500),
    st.one_of(st.none(), st.sampled_from(["CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "??"])),
    st.one_of(st.none(), st.text(max_size=40)),
)
@settings(max_examples=200, deadline=None)
def test_classify_reply_never_raises(
    code: int | None, enhanced: str | None, text: str, command: str | None, recipient: str | None
) -> None:
    verdict = classify_reply(code, enhanced, text, command, recipient)
    assert verdict.source == "smtp"
