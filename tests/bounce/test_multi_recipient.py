"""A report about several recipients gives one verdict per recipient, in order.

RFC 3464 gives each recipient of a DSN its own block of fields; RFC 5965 repeats
``Original-Rcpt-To`` once per recipient of the reported message (some providers write
``Removal-Recipient``). Every fixture is a small synthetic mail written here.
"""

from __future__ import annotations

from engine.bounce import BounceReport, parse_bounce


def _parse(text: str) -> BounceReport:
    return parse_bounce(text.replace("\n", "\r\n").encode("utf-8"))


DSN = """\
From: MAILER-DAEMON@mx.school.example.jp (Mail Delivery System)
To: bounce+42@mail.school.example.jp
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset=us-ascii

<taro@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1 <taro@example.net>:
    Recipient address rejected: User unknown (in reply to RCPT TO command)

<hanako@example.org>: host mx.example.org[192.0.2.26] said: 552 5.2.2 <hanako@example.org>:
    Mailbox full (in reply to RCPT TO command)

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.school.example.jp
Arrival-Date: Mon,  7 Dec 2026 10:00:00 +0900

Final-Recipient: rfc822; taro@example.net
Original-Recipient: rfc822;taro@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <taro@example.net>: Recipient address rejected: User unknown

Final-Recipient: rfc822; hanako@example.org
Original-Recipient: rfc822;hanako@example.org
Action: failed
Status: 5.2.2
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 552 5.2.2 <hanako@example.org>: Mailbox full

--BOUND
Content-Type: message/rfc822

From: info@school.example.jp
To: taro@example.net, hanako@example.org
Message-ID: <n-1@school.example.jp>
Subject: notice

hi
--BOUND--
"""
# The mailer left out the blank line between the two recipient blocks.
DSN2 = DSN.replace(
    """Diagnostic-Code: smtp; 550 5.1.1 <taro@example.net>: Recipient address rejected: User unknown

Final-Recipient""",
    """Diagnostic-Code: smtp; 550 5.1.1 <taro@example.net>: Recipient address rejected: User unknown
Original-Recipient: rfc822;hanako@example.org
Final-Recipient""",
).replace(
    "Final-Recipient: rfc822; hanako@example.org\nOriginal-Recipient: rfc822;hanako@example.org\n",
    "Final-Recipient: rfc822; hanako@example.org\n",
)
ARF = """\
From: feedback@mail.example.net
To: fbl@school.example.jp
Subject: FW: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an email abuse report.

--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounce+42@mail.school.example.jp>
Original-Rcpt-To: <taro@example.net>
Original-Rcpt-To: <hanako@example.net>
Arrival-Date: Mon, 7 Dec 2026 10:00:00 +0900

--B
Content-Type: message/rfc822

From: info@school.example.jp
To: undisclosed-recipients:;
Message-ID: <n-1@school.example.jp>
Subject: notice

hi
--B--
"""
ARF2 = ARF.replace(
    "Original-Rcpt-To: <taro@example.net>\nOriginal-Rcpt-To: <hanako@example.net>\n",
    "Removal-Recipient: taro@example.net\nRemoval-Recipient: hanako@example.net\n",
)


def _found(report: BounceReport) -> list[tuple[str | None, str]]:
    return [(v.recipient, v.reason) for v in report.verdicts]


def test_postfix_dsn_with_two_failed_recipients_gives_two_verdicts() -> None:
    report = _parse(DSN)
    assert report.kind == "dsn"
    assert _found(report) == [
        ("taro@example.net", "userunknown"),
        ("hanako@example.org", "mailboxfull"),
    ]


def test_dsn_recipient_blocks_without_a_blank_line_are_still_two() -> None:
    assert _found(_parse(DSN2)) == [
        ("taro@example.net", "userunknown"),
        ("hanako@example.org", "mailboxfull"),
    ]


def test_arf_with_two_original_rcpt_to_gives_one_complaint_each() -> None:
    report = _parse(ARF)
    assert report.kind == "arf"
    assert _found(report) == [
        ("taro@example.net", "feedback"),
        ("hanako@example.net", "feedback"),
    ]
    assert all(v.category == "complaint" and not v.hard for v in report.verdicts)


def test_arf_with_removal_recipients_gives_one_complaint_each() -> None:
    assert _found(_parse(ARF2)) == [
        ("taro@example.net", "feedback"),
        ("hanako@example.net", "feedback"),
    ]


def test_arf_naming_a_recipient_twice_counts_it_once() -> None:
    text = ARF.replace("Arrival-Date:", "Removal-Recipient: Taro@example.net\nArrival-Date:")
    assert [v.recipient for v in _parse(text).verdicts] == [
        "taro@example.net",
        "hanako@example.net",
    ]


def test_feedback_fields_in_a_text_part_name_every_recipient() -> None:
    text = """\
From: <fbl@example.net>
To: <fbl@school.example.jp>
Subject: complaint
Content-Type: text/plain

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: taro@example.net
Original-Rcpt-To: hanako@example.net
"""
    report = _parse(text)
    assert report.kind == "arf"
    assert [v.recipient for v in report.verdicts] == ["taro@example.net", "hanako@example.net"]
