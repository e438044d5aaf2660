"""Reading whole bounce mails: DSNs, human-readable bounces, Japanese mail, complaints, replies.

Every fixture is a small synthetic mail written here; the tests never read the shared corpus.
"""

from __future__ import annotations

import base64
import json

from engine.bounce import BounceReport, parse_bounce

ORIGINAL = """\
Return-Path: <bounce+42@mail.school.example.jp>
Message-ID: <notice-42@school.example.jp>
X-Mamoru-Delivery: d-42
From: Sakura School <info@school.example.jp>
To: guardian@example.net
Subject: notice

Typhoon: school closed today.
"""


def _parse(text: str) -> BounceReport:
    return parse_bounce(text.replace("\n", "\r\n").encode("utf-8"))


POSTFIX_DSN = f"""\
From: MAILER-DAEMON@mx.school.example.jp (Mail Delivery System)
To: bounce+42@mail.school.example.jp
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.school.example.jp.

<guardian@example.net>: host mx.example.net[192.0.2.9] said: 550 5.1.1
    <guardian@example.net>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

<parent@example.org>: host mx.example.org[192.0.2.10] said: 552 5.2.2
    <parent@example.org>: Mailbox full (in reply to RCPT TO command)

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.school.example.jp

Final-Recipient: rfc822; guardian@example.net
Original-Recipient: rfc822;guardian@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <guardian@example.net>: Recipient address
    rejected: User unknown in local recipient table

Final-Recipient: rfc822; parent@example.org
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 <parent@example.org>: Mailbox full

--BOUND
Content-Type: message/rfc822

{ORIGINAL}
--BOUND--
"""


def test_dsn_gives_one_verdict_per_failed_recipient_in_order() -> None:
    report = _parse(POSTFIX_DSN)
    assert report.kind == "dsn"
    assert [v.recipient for v in report.verdicts] == ["guardian@example.net", "parent@example.org"]
    first, second = report.verdicts
    assert (first.reason, first.status, first.reply_code, first.hard) == (
        "userunknown",
        "5.1.1",
        550,
        True,
    )
    assert (first.action, first.source) == ("failed", "dsn")
    assert (second.reason, second.category, second.hard) == ("mailboxfull", "mailbox_full", False)


def test_dsn_returns_the_original_message_identifiers() -> None:
    report = _parse(POSTFIX_DSN)
    assert report.message_id == "<notice-42@school.example.jp>"
    assert report.delivery_id == "d-42"
    assert report.return_path == "bounce+42@mail.school.example.jp"


QMAIL = f"""\
From: MAILER-DAEMON@mx.example.org
To: bounce+42@mail.school.example.jp
Subject: failure notice

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<taro@example.org>:
192.0.2.5 does not like recipient.
Remote host said: 550 5.1.1 <taro@example.org>... User Unknown
Giving up on 192.0.2.5.

<jiro@example.org>:
192.0.2.5 does not like recipient.
Remote host said: 552 5.2.2 <jiro@example.org>... Mailbox over quota
Giving up on 192.0.2.5.

--- Below this line is a copy of the message.

{ORIGINAL}"""


def test_qmail_bounce_is_read_as_nonstandard_with_each_recipients_own_reason() -> None:
    report = _parse(QMAIL)
    assert report.kind == "nonstandard"
    assert [(v.recipient, v.reason) for v in report.verdicts] == [
        ("taro@example.org", "userunknown"),
        ("jiro@example.org", "mailboxfull"),
    ]
    assert report.verdicts[0].source == "nonstandard"
    assert report.message_id == "<notice-42@school.example.jp>"


EXIM = f"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.com>
To: bounce+42@mail.school.example.jp
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: hanako@example.com

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  hanako@example.com
    SMTP error from remote mail server after MAIL FROM:<bounce+42@mail.school.example.jp>:
    host mx.example.com [192.0.2.20]: 554 5.7.1 Service unavailable; Client host
    [198.51.100.7] blocked using zen.spamhaus.org

------ This is a copy of the message, including all the headers. ------

{ORIGINAL}"""


def test_exim_bounce_uses_x_failed_recipients_and_finds_the_block() -> None:
    report = _parse(EXIM)
    assert report.kind == "nonstandard"
    (verdict,) = report.verdicts
    assert verdict.recipient == "hanako@example.com"
    assert verdict.reason == "blocked"
    assert verdict.category == "spam_blocked"
    assert verdict.status == "5.7.1"
    assert verdict.reply_code == 554


SENDMAIL_AFTER_DATA = """\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.co.jp>
To: bounce+42@mail.school.example.jp
Subject: Returned mail: see transcript for details

The original message was received at Mon, 1 Sep 2025 08:00:00 +0900

   ----- The following addresses had permanent fatal errors -----
<ken@example.co.jp>

   ----- Transcript of session follows -----
>>> DATA
<<< 550 5.0.0 <ken@example.co.jp>... User unknown
554 5.0.0 Service unavailable
"""


def test_user_unknown_answered_after_data_is_treated_as_a_filter() -> None:
    (verdict,) = _parse(SENDMAIL_AFTER_DATA).verdicts
    assert verdict.recipient == "ken@example.co.jp"
    assert (verdict.reason, verdict.hard) == ("filtered", False)


def test_iso_2022_jp_japanese_bounce_is_decoded_and_classified() -> None:
    body = (
        "次の宛先へのメールは配信できませんでした。\n\n"
        "<yuki@example.ne.jp>\n"
        "550 5.1.1 宛先のメールアドレスは存在しません。\n"
    )
    subject = base64.b64encode("配信エラーのお知らせ".encode("iso-2022-jp")).decode()
    head = (
        "From: postmaster@example.ne.jp\r\n"
        "To: bounce+42@mail.school.example.jp\r\n"
        f"Subject: =?ISO-2022-JP?B?{subject}?=\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="ISO-2022-JP"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    raw = head.encode("ascii") + body.replace("\n", "\r\n").encode("iso-2022-jp")
    report = parse_bounce(raw)
    assert report.kind == "nonstandard"
    (verdict,) = report.verdicts
    assert verdict.recipient == "yuki@example.ne.jp"
    assert (verdict.reason, verdict.category, verdict.hard) == ("userunknown", "unknown_user", True)
    assert "存在しません" in verdict.diagnostic


def test_euc_jp_text_mislabelled_as_iso_2022_jp_is_still_read() -> None:
    body = "メールボックスの容量を超えています。\n<mika@example.jp>\n"
    head = (
        "From: MAILER-DAEMON@example.jp\r\nSubject: Returned mail\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n"
    )
    report = parse_bounce(head.encode() + body.encode("euc-jp"))
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason) == ("mika@example.jp", "mailboxfull")


ARF = f"""\
From: feedback@fbl.example.net
To: abuse@school.example.jp
Subject: Email Feedback Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: <guardian@example.net>

--ARF
Content-Type: message/rfc822

{ORIGINAL}
--ARF--
"""


def test_arf_report_is_a_complaint_about_the_reported_recipient() -> None:
    report = _parse(ARF)
    assert report.kind == "arf"
    (verdict,) = report.verdicts
    assert verdict.recipient == "guardian@example.net"
    assert (verdict.reason, verdict.category, verdict.source) == ("feedback", "complaint", "arf")
    assert verdict.hard is False
    assert report.delivery_id == "d-42"


AUTOREPLY = """\
From: Taro Yamada <taro@example.jp>
To: info@school.example.jp
Subject: Out of Office: notice
Auto-Submitted: auto-replied

I am away until Monday.
"""


def test_auto_reply_is_vacation_for_its_sender() -> None:
    report = _parse(AUTOREPLY)
    assert report.kind == "autoreply"
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason, verdict.category) == (
        "taro@example.jp",
        "vacation",
        "autoreply",
    )


def test_amazon_ses_json_notification_is_read() -> None:
    message = {
        "notificationType": "Bounce",
        "bounce": {
            "bouncedRecipients": [
                {
                    "emailAddress": "sora@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ]
        },
    }
    body = json.dumps({"Type": "Notification", "Message": json.dumps(message)})
    report = _parse(f"From: no-reply@sns.amazonaws.com\nSubject: AWS Notification\n\n{body}\n")
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason, verdict.hard) == (
        "sora@example.com",
        "userunknown",
        True,
    )


def test_ordinary_mail_is_unknown_with_no_verdicts() -> None:
    report = _parse("From: guardian@example.net\nSubject: Thanks\n\nThank you for the notice.\n")
    assert report.kind == "unknown"
    assert report.verdicts == []


def test_bounce_without_recognisable_recipient_is_unknown() -> None:
    text = "From: MAILER-DAEMON@example.jp\nSubject: Undelivered Mail\n\nSomething failed.\n"
    report = _parse(text)
    assert (report.kind, report.verdicts) == ("unknown", [])


POSTFIX_SENDER_DOMAIN = """\
From: MAILER-DAEMON@mx.school.example.jp (Mail Delivery System)
To: bounce+42@mail.school.example.jp
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.school.example.jp.

<mother@example.com>: host mx.example.com[192.0.2.3] said: 450 4.1.8
    <bounce+42@mail.school.example.jp>: Sender address rejected: Domain not found
    (in reply to RCPT TO command)
"""


def test_refusal_of_our_sender_domain_never_blames_the_recipient() -> None:
    (verdict,) = _parse(POSTFIX_SENDER_DOMAIN).verdicts
    assert verdict.recipient == "mother@example.com"
    assert (verdict.reason, verdict.hard) == ("rejected", False)


FORWARDED = f"""\
From: Teacher <teacher@school.example.jp>
To: it-desk@school.example.jp
Subject: Fwd: this came back
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="FWD"

--FWD
Content-Type: text/plain

Could you look at this one?

--FWD
Content-Type: message/rfc822

{POSTFIX_DSN}
--FWD--
"""


def test_forwarded_bounce_is_read_from_the_attached_mail() -> None:
    report = _parse(FORWARDED)
    assert report.kind == "dsn"
    assert [v.recipient for v in report.verdicts] == ["guardian@example.net", "parent@example.org"]


def test_rfc2047_encoded_subject_is_used_as_a_last_hint() -> None:
    text = (
        "From: MAILER-DAEMON@example.jp\n"
        "Subject: =?UTF-8?B?UmV0dXJuZWQgbWFpbDogTWFpbGJveCBmdWxs?=\n\n"
        "The following address failed:\n\n  ume@example.jp\n"
    )
    (verdict,) = _parse(text).verdicts
    assert (verdict.recipient, verdict.reason) == ("ume@example.jp", "mailboxfull")
