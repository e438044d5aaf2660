"""Bounce mails in the shapes the Japanese carriers' systems send, read end to end.

Replies restate the project's carrier notes (docs: ``/work/shared/research/carriers.md``):
docomo answers ``550 Unknown user`` both for a missing mailbox (at RCPT) and for its
reception filter (after DATA), and ``552 Too much mail data`` for a full mailbox; KDDI (au)
names the address only when the mailbox is missing and answers ``554 Relay access denied``
for malformed addresses; SoftBank answers ``550 Invalid recipient`` and refuses a sender domain
without DNS with ``553 <domain> does not exist``. The mails are written here.
"""

from __future__ import annotations

import pytest

from engine.bounce import BounceReport, parse_bounce


def _parse(text: str) -> BounceReport:
    return parse_bounce(text.replace("\n", "\r\n").encode("utf-8"))


def _postfix_bounce(recipient: str, said: str, command: str) -> str:
    """The human-readable bounce our own relay (Postfix) writes after a carrier refused."""
    return f"""\
From: MAILER-DAEMON@relay.school.example.jp (Mail Delivery System)
To: b-42-abc@bounce.school.example.jp
Subject: Undelivered Mail Returned to Sender

This is the mail system at host relay.school.example.jp.

<{recipient}>: host mx.carrier.example[192.0.2.7] said: {said} (in reply to {command} command)
"""


@pytest.mark.parametrize(
    ("recipient", "said", "command", "reason", "hard"),
    [
        # docomo
        (
            "hanako@docomo.ne.jp",
            "550 Unknown user hanako@docomo.ne.jp",
            "RCPT TO",
            "userunknown",
            True,
        ),
        (
            "hanako@docomo.ne.jp",
            "550 Unknown user hanako@docomo.ne.jp",
            "end of DATA",
            "filtered",
            False,
        ),
        ("hanako@docomo.ne.jp", "552 Too much mail data", "end of DATA", "mailboxfull", False),
        ("hanako@docomo.ne.jp", "552 Too many recipients", "RCPT TO", "toomanyconn", False),
        # KDDI (au)
        (
            "taro@ezweb.ne.jp",
            "550 <taro@ezweb.ne.jp>: User unknown",
            "RCPT TO",
            "userunknown",
            True,
        ),
        ("taro@au.com", "550 : User unknown", "RCPT TO", "filtered", False),
        (
            "taro.@ezweb.ne.jp",
            "554 5.7.1 <taro.@ezweb.ne.jp>: Relay access denied",
            "RCPT TO",
            "userunknown",
            True,
        ),
        # SoftBank
        (
            "jiro@i.softbank.jp",
            "550 Invalid recipient <jiro@i.softbank.jp>",
            "RCPT TO",
            "userunknown",
            True,
        ),
        (
            "jiro@softbank.ne.jp",
            "553 school.example.jp does not exist",
            "MAIL FROM",
            "rejected",
            False,
        ),
    ],
)
def test_carrier_reply_relayed_in_a_bounce_gets_the_carriers_meaning(
    recipient: str, said: str, command: str, reason: str, hard: bool
) -> None:
    report = _parse(_postfix_bounce(recipient, said, command))
    assert report.kind == "nonstandard"
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason, verdict.hard) == (recipient, reason, hard)


def test_docomo_dsn_for_a_missing_mailbox_is_a_hard_unknown_user() -> None:
    report = _parse(
        """\
From: Mail Delivery Subsystem <MAILER-DAEMON@relay.school.example.jp>
To: b-42-abc@bounce.school.example.jp
Subject: Returned mail: see transcript for details
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="D"

--D
Content-Type: text/plain

   ----- Transcript of session follows -----
>>> RCPT To:<hanako@docomo.ne.jp>
<<< 550 Unknown user hanako@docomo.ne.jp
550 5.1.1 <hanako@docomo.ne.jp>... User unknown

--D
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.school.example.jp

Final-Recipient: RFC822; hanako@docomo.ne.jp
Action: failed
Status: 5.1.1
Remote-MTA: DNS; mfsmax.docomo.ne.jp
Diagnostic-Code: SMTP; 550 Unknown user hanako@docomo.ne.jp

--D--
"""
    )
    (verdict,) = report.verdicts
    assert (verdict.reason, verdict.hard, verdict.category) == ("userunknown", True, "unknown_user")


def test_au_mailbox_full_notice_in_japanese_is_mailbox_full_and_soft() -> None:
    report = _parse(
        """\
From: MAILER-DAEMON@ezweb.ne.jp
To: b-42-abc@bounce.school.example.jp
Subject: =?ISO-2022-JP?B?GyRCJWEhPCVrJE4bKEI=?= error
Content-Type: text/plain; charset=utf-8

次の宛先へのメールは、受信者のメールボックスの容量を超えているため配信できませんでした。
<taro@ezweb.ne.jp>
"""
    )
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason, verdict.hard) == (
        "taro@ezweb.ne.jp",
        "mailboxfull",
        False,
    )


@pytest.mark.parametrize(
    ("wording", "reason"),
    [
        # Without the SMTP command or a status, "user unknown" may be a filter speaking
        # (see test_reply); the status says it is the mailbox.
        ("550 5.1.1 指定されたユーザーが見つかりません", "userunknown"),
        ("指定されたユーザーが見つかりません", "filtered"),
        ("宛先ドメインが存在しません", "hostunknown"),
        ("メールボックスがいっぱいです", "mailboxfull"),
        ("このアカウントは停止されています", "suspend"),
        ("メールのサイズが制限を超えています", "mesgtoobig"),
        ("配信期限が切れたため配信できませんでした", "expired"),
    ],
)
def test_japanese_mail_systems_wording_is_read_by_meaning(wording: str, reason: str) -> None:
    report = _parse(
        f"""\
From: MAILER-DAEMON@mail.example.ne.jp
To: b-42-abc@bounce.school.example.jp
Subject: =?UTF-8?B?44Ko44Op44O844Oh44O844Or?=
Content-Type: text/plain; charset=utf-8

<hanako@example.ne.jp>
{wording}
"""
    )
    (verdict,) = report.verdicts
    assert (verdict.recipient, verdict.reason) == ("hanako@example.ne.jp", reason)
