"""A mailbox that plainly does not exist is ``userunknown``, whatever else the reply says.

RFC 3463 5.1.1 ("bad destination mailbox address") and wording such as "user unknown",
"no such user" or "mailbox not found" outrank the boilerplate servers add ("rejected",
"blocked by policy", "filtered"), in our own SMTP replies and in bounce mails alike. Every
fixture is a small synthetic reply or mail written here.
"""

from __future__ import annotations

import pytest

from engine.bounce import BounceReport, parse_bounce
from engine.bounce.classify import classify_reply

POLICY_BOILERPLATE = (
    "550 5.1.1 <taro@example.net>: Recipient address rejected: User unknown in virtual "
    "mailbox table; blocked by policy"
)


@pytest.mark.parametrize("command", ["RCPT", "DATA", None])
def test_status_5_1_1_with_policy_words_is_userunknown(command: str | None) -> None:
    v = classify_reply(550, "5.1.1", POLICY_BOILERPLATE, command, "taro@example.net")
    assert (v.reason, v.hard) == ("userunknown", True)


@pytest.mark.parametrize(
    "text",
    [
        "550 5.7.1 Mailbox not found; rejected by local policy",
        "550 5.7.1 <taro@example.net>: no such user here; message filtered",
        "550 5.4.1 Recipient address rejected: blocked. The address couldn't be found",
        "554 5.7.1 Unknown user taro; refused by spam policy",
        "550 5.7.0 The mailbox <taro@example.net> does not exist; denied by policy",
    ],
)
def test_plain_user_unknown_wording_beats_other_words(text: str) -> None:
    v = classify_reply(550, None, text, "RCPT", "taro@example.net")
    assert v.reason == "userunknown"


def test_bare_5_1_1_beats_broad_refusal_words() -> None:
    v = classify_reply(
        550, "5.1.1", "550 5.1.1 Message refused: sender IP blocked by policy", "RCPT"
    )
    assert v.reason == "userunknown"


@pytest.mark.parametrize(
    ("text", "status", "reason"),
    [
        # The unknown user is our envelope sender (Postfix sender address verification).
        (
            "550 5.1.0 <info@school.example.jp>: Sender address rejected: User unknown in "
            "local recipient table",
            None,
            "rejected",
        ),
        # A moved mailbox is a finer reading of 5.1.1.
        ("550 5.1.1 User unknown: this address has moved", "5.1.1", "hasmoved"),
        # A decisive status for something else: the domain itself does not exist.
        ("550 5.1.2 unknown user or host", "5.1.2", "hostunknown"),
    ],
)
def test_established_finer_readings_are_kept(text: str, status: str | None, reason: str) -> None:
    assert classify_reply(550, status, text, "RCPT").reason == reason


def test_plain_wording_after_data_without_5_1_1_is_still_the_filter() -> None:
    # The mailbox was accepted at RCPT (RFC 5321), so a later "user unknown" is a filter.
    v = classify_reply(550, "5.7.1", "550 5.7.1 User unknown", "DATA", "taro@example.net")
    assert v.reason == "filtered"


def _dsn(diagnostic: str, status: str) -> BounceReport:
    text = f"""\
From: MAILER-DAEMON@mx.school.example.jp (Mail Delivery System)
To: bounce+42@mail.school.example.jp
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

<taro@example.net>: host mx.example.net[192.0.2.25] said:
    {diagnostic} (in reply to RCPT TO command)

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.school.example.jp

Final-Recipient: rfc822; taro@example.net
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--BOUND--
"""
    return parse_bounce(text.replace("\n", "\r\n").encode())


def test_dsn_with_5_1_1_and_policy_words_is_userunknown() -> None:
    (v,) = _dsn(POLICY_BOILERPLATE, "5.1.1").verdicts
    assert (v.recipient, v.reason, v.hard) == ("taro@example.net", "userunknown", True)


def test_dsn_with_generic_status_and_plain_wording_is_userunknown() -> None:
    (v,) = _dsn("550 Requested action not taken: no such user; filtered", "5.0.0").verdicts
    assert v.reason == "userunknown"


def test_command_folded_over_two_lines_by_postfix_is_still_read() -> None:
    # Postfix folds "(in reply to RCPT TO command)" after a long reply; the command RCPT
    # settles a plain "no such user" for the mailbox rather than a filter.
    report = parse_bounce(
        b"From: MAILER-DAEMON@mx.school.example.jp (Mail Delivery System)\r\n"
        b"To: bounce+42@mail.school.example.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"This is the mail system at host mx.school.example.jp.\r\n"
        b"\r\n"
        b"<taro@example.net>: host mx.example.net[192.0.2.25] said: 550 no such user\r\n"
        b"    taro@example.net in this domain; message filtered (in reply\r\n"
        b"    to RCPT TO command)\r\n"
    )
    (v,) = report.verdicts
    assert (v.recipient, v.reason) == ("taro@example.net", "userunknown")
