"""Classification from the structure of a report: RFC 3464 DSNs, RFC 5965 complaints, RFC 3834.

The mails are written here after the RFCs' examples (and the fields they define); none comes
from the shared corpus. The order of trust (status meanings, then wording, then reply codes)
is checked on replies where two kinds of evidence disagree.
"""

from __future__ import annotations

import pytest

from engine.bounce import BounceReport, classify_reply, parse_bounce

ORIGINAL = """\
Return-Path: <b-42-abc@bounce.school.example.jp>
Message-ID: <mamoru.7.42@school.example.jp>
From: Sakura School <info@school.example.jp>
To: guardian@example.net
Subject: notice

Typhoon: school closed today.
"""


def _parse(text: str) -> BounceReport:
    return parse_bounce(text.replace("\n", "\r\n").encode("utf-8"))


def _dsn(per_recipient: str, human: str = "Your message could not be delivered.") -> str:
    return f"""\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.school.example.jp>
To: b-42-abc@bounce.school.example.jp
Subject: Returned mail: see transcript for details
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="RFC3464"

--RFC3464
Content-Type: text/plain

{human}

--RFC3464
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.school.example.jp
Arrival-Date: Mon, 23 Nov 2026 09:00:00 +0900

{per_recipient}

--RFC3464
Content-Type: message/rfc822

{ORIGINAL}
--RFC3464--
"""


# --- RFC 3464 delivery status notifications ---------------------------------------------


def test_dsn_generic_status_gives_way_to_the_remote_servers_specific_one() -> None:
    report = _parse(
        _dsn(
            "Final-Recipient: rfc822; guardian@example.net\n"
            "Action: failed\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: smtp; 552 5.2.2 Requested action aborted"
        )
    )
    (verdict,) = report.verdicts
    assert (verdict.status, verdict.reason, verdict.hard) == ("5.2.2", "mailboxfull", False)


def test_dsn_queue_expiry_status_gives_way_to_the_reason_the_remote_gave() -> None:
    report = _parse(
        _dsn(
            "Final-Recipient: rfc822; guardian@example.net\n"
            "Action: failed\n"
            "Status: 4.4.7\n"
            "Diagnostic-Code: smtp; 452 4.3.1 Insufficient system storage"
        )
    )
    assert report.verdicts[0].reason == "systemfull"


def test_dsn_that_gave_up_after_no_answer_is_expired_and_soft() -> None:
    report = _parse(
        _dsn("Final-Recipient: rfc822; guardian@example.net\nAction: failed\nStatus: 4.4.1")
    )
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard, verdict.category) == ("expired", False, "network_expired")


def test_dsn_delay_warning_is_soft_and_marked_delayed() -> None:
    report = _parse(
        _dsn(
            "Final-Recipient: rfc822; guardian@example.net\n"
            "Action: delayed\n"
            "Status: 4.4.1\n"
            "Will-Retry-Until: Tue, 24 Nov 2026 09:00:00 +0900"
        )
    )
    (verdict,) = report.verdicts
    assert (verdict.action, verdict.hard) == ("delayed", False)


@pytest.mark.parametrize("status", ["4.4.1", "4.4.2", "4.4.7"])
def test_dsn_delay_notice_about_the_network_reads_as_expiring(status: str) -> None:
    # RFC 3464 "delayed" with RFC 3463 x.4.1 / x.4.2 / x.4.7: the message is ageing in the
    # sender's queue whatever words name the connection trouble.
    report = _parse(
        _dsn(
            "Final-Recipient: rfc822; guardian@example.net\n"
            "Action: delayed\n"
            f"Status: {status}\n"
            "Diagnostic-Code: smtp; connect to mx.example.net[192.0.2.7]:25: Connection refused"
        )
    )
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.action, verdict.hard) == ("expired", "delayed", False)


def test_dsn_with_wording_no_rule_reads_is_on_hold_for_a_person_never_hard() -> None:
    report = _parse(
        _dsn(
            "Final-Recipient: rfc822; guardian@example.net\n"
            "Action: failed\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: smtp; 550 Nyaan nyaan"
        )
    )
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard, verdict.category) == ("onhold", False, "other")


def test_dsn_that_says_nothing_about_the_failure_is_undefined() -> None:
    report = _parse(_dsn("Final-Recipient: rfc822; guardian@example.net\nAction: failed"))
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard) == ("undefined", False)


def test_bounce_marked_auto_generated_is_read_as_a_bounce() -> None:
    report = _parse(
        """\
From: Postmaster <robot@mx.example.net>
To: b-42-abc@bounce.school.example.jp
Subject: Nachricht
Auto-Submitted: auto-generated

<guardian@example.net>: 552 5.2.2 quota exceeded
"""
    )
    assert report.kind == "nonstandard"
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("guardian@example.net", "mailboxfull")
    ]


# --- RFC 5965 feedback reports and other complaints -------------------------------------

FEEDBACK_PART = """\
Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <b-42-abc@bounce.school.example.jp>
Original-Rcpt-To: <guardian@example.net>
Arrival-Date: Mon, 23 Nov 2026 09:00:00 +0900
Source-IP: 192.0.2.1
"""


def _arf(boundary: str = "ARF") -> str:
    return f"""\
From: <abuse@example.net>
To: <fbl@school.example.jp>
Subject: FW: notice
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP 192.0.2.1.

--{boundary}
Content-Type: message/feedback-report

{FEEDBACK_PART}
--{boundary}
Content-Type: message/rfc822

{ORIGINAL}
--{boundary}--
"""


def test_arf_report_names_the_complainant_from_original_rcpt_to() -> None:
    report = _parse(_arf())
    assert report.kind == "arf"
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason, verdict.hard) == (
        "guardian@example.net",
        "feedback",
        False,
    )
    assert verdict.category == "complaint"


def test_arf_report_forwarded_inside_another_mail_is_still_a_complaint() -> None:
    forwarded = f"""\
From: Helpdesk <help@example.net>
To: postmaster@school.example.jp
Subject: Fwd: complaint
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="OUTER"

--OUTER
Content-Type: text/plain

Forwarding the complaint below.

--OUTER
Content-Type: message/rfc822

{_arf("INNER")}
--OUTER--
"""
    report = _parse(forwarded)
    assert report.kind == "arf"
    assert report.verdicts[0].reason == "feedback"


def test_feedback_fields_written_into_a_text_part_are_a_complaint() -> None:
    report = _parse(
        f"""\
From: <fbl@example.net>
To: <fbl@school.example.jp>
Subject: complaint
Content-Type: text/plain

{FEEDBACK_PART}
"""
    )
    assert report.kind == "arf"
    assert report.verdicts[0].recipient == "guardian@example.net"


def test_microsoft_jmrp_report_names_the_complainant_from_its_header() -> None:
    report = _parse(
        """\
From: staff@hotmail.example
To: fbl@school.example.jp
Subject: complaint about message from 192.0.2.1
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="J"

--J
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: <guardian@example.net>
From: info@school.example.jp
To: someone-else@example.net
Subject: notice

text
--J--
"""
    )
    assert report.kind == "arf"
    assert report.verdicts[0].recipient == "guardian@example.net"


def test_apple_mail_unsubscribe_request_is_a_complaint_from_its_sender() -> None:
    report = _parse(
        """\
From: guardian@example.net
To: unsubscribe@school.example.jp
Subject: unsubscribe
Auto-Submitted: auto-replied
X-Apple-Unsubscribe: true

Apple Mail sent this email to unsubscribe from the message.
"""
    )
    assert report.kind == "arf"
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("guardian@example.net", "feedback")
    ]


# --- RFC 3834 automatic replies ---------------------------------------------------------


def test_rfc3834_auto_replied_mail_is_vacation_and_not_a_failure() -> None:
    report = _parse(
        """\
From: Guardian <guardian@example.net>
To: info@school.example.jp
Subject: Re: notice
Auto-Submitted: auto-replied

I am away until Monday.
"""
    )
    assert report.kind == "autoreply"
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard, verdict.category) == ("vacation", False, "autoreply")


def test_auto_reply_that_looks_like_nothing_else_is_not_taken_for_a_bounce() -> None:
    report = _parse(
        """\
From: Guardian <guardian@example.net>
To: info@school.example.jp
Subject: Out of office

Back next week.
"""
    )
    assert report.kind == "autoreply"


# --- order of trust ---------------------------------------------------------------------


def test_wording_about_our_host_does_not_override_a_status_about_the_mailbox() -> None:
    verdict = classify_reply(
        550,
        "5.1.1",
        "550 5.1.1 recipient rejected; see http://rbl.example/blocked for blocked senders",
        command="RCPT",
    )
    assert (verdict.reason, verdict.hard) == ("userunknown", True)


def test_broad_wording_gives_way_to_a_specific_status() -> None:
    verdict = classify_reply(452, "4.3.1", "452 4.3.1 try again later")
    assert verdict.reason == "systemfull"


def test_narrow_wording_beats_a_status_that_says_less() -> None:
    verdict = classify_reply(552, "5.1.1", "552 mailbox is over quota temporarily (#5.1.1)")
    assert (verdict.reason, verdict.hard) == ("mailboxfull", False)


def test_reply_code_meaning_decides_when_nothing_else_speaks() -> None:
    assert classify_reply(552, None, "552 Requested mail action aborted").reason == "mailboxfull"
    assert classify_reply(501, None, "501 Nyaan").reason == "syntaxerror"


def test_refusal_at_the_greeting_is_our_host_blocked_whatever_the_words() -> None:
    report = _parse(
        """\
From: Mail Delivery System <Mailer-Daemon@relay.school.example.jp>
To: b-42-abc@bounce.school.example.jp
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: guardian@example.net

This message was created automatically by mail delivery software.

  guardian@example.net
    host mx.example.net [192.0.2.9]
    SMTP error from remote mail server after initial connection:
    550 Access denied
"""
    )
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard, verdict.category) == ("blocked", False, "spam_blocked")


def test_notice_without_codes_that_names_a_failure_narrowly_is_a_bounce() -> None:
    report = _parse(
        """\
From: info@mail.example.ne.jp
To: b-42-abc@bounce.school.example.jp
Subject: =?UTF-8?B?44GK55+l44KJ44Gb?=
Content-Type: text/plain; charset=utf-8

次の宛先はメールボックスがいっぱいのため、メールをお届けできませんでした。
hanako@example.ne.jp
"""
    )
    assert report.kind == "nonstandard"
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("hanako@example.ne.jp", "mailboxfull")
    ]


def test_auto_reply_that_mentions_a_full_mailbox_stays_an_auto_reply() -> None:
    report = _parse(
        """\
From: Guardian <guardian@example.net>
To: info@school.example.jp
Subject: Re: notice
Auto-Submitted: auto-replied

I am away and my mailbox is full; write to kazoku@example.net instead.
"""
    )
    assert report.kind == "autoreply"
    assert report.verdicts[0].reason == "vacation"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # One meaning, worded by different mailers.
        ("Could not deliver for the last 432000 seconds. Giving up.", "expired"),
        ("Cannot send message for 5 days", "expired"),
        ("Message will be retried for 2 more days", "expired"),
        ("Envelope expired", "expired"),
        ("Relay access denied", "norelaying"),
        ("we do not relay for example.net", "norelaying"),
        ("Relaying mail to example.net is not allowed", "norelaying"),
        ("Requested mail action aborted: exceeded storage allocation", "mailboxfull"),
        ("User example@example.net temporary locked", "suspend"),
        ("The recipient account is blocked", "suspend"),
        ("Mailbox is frozen", "suspend"),
        ("DNS lookup failure: host mx.example.net not found", "hostunknown"),
        ("No such domain", "hostunknown"),
        ("Your envelope sender is in my badmailfrom list", "rejected"),
        ("Message denied by policy", "policyviolation"),
        ("Blacklisted URL in message", "spamdetected"),
        ("forbidden by invalid RDNS record of your mail server", "requireptr"),
    ],
)
def test_wordings_of_one_meaning_from_different_mailers_agree(text: str, reason: str) -> None:
    assert classify_reply(550, None, f"550 {text}", command="RCPT").reason == reason
