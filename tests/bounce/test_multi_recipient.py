"""A report about several recipients gives one verdict per recipient, in order.

RFC 3464 gives each recipient of a DSN its own block of fields; RFC 5965 repeats
``Original-Rcpt-To`` once per recipient of the reported message (some providers write
``Removal-Recipient``). The fixtures are test_parse's synthetic mails, changed where a
case needs it.
"""

from __future__ import annotations

from bounce.test_parse import ARF as ONE_RECIPIENT_ARF
from bounce.test_parse import POSTFIX_DSN
from engine.bounce import BounceReport, parse_bounce


def _parse(text: str) -> BounceReport:
    return parse_bounce(text.replace("\n", "\r\n").encode("utf-8"))


# The mailer left out the blank line between the two recipient blocks of test_parse's DSN
# (which test_parse reads with the blank line).
DSN2 = POSTFIX_DSN.replace(
    "    rejected: User unknown in local recipient table\n\nFinal-Recipient",
    "    rejected: User unknown in local recipient table\nFinal-Recipient",
)
assert DSN2 != POSTFIX_DSN
# test_parse's feedback report, naming a second recipient of the reported message.
ARF = ONE_RECIPIENT_ARF.replace(
    "Original-Rcpt-To: <guardian@example.net>\n",
    "Original-Rcpt-To: <guardian@example.net>\nOriginal-Rcpt-To: <parent@example.org>\n",
)
ARF2 = ARF.replace(
    "Original-Rcpt-To: <guardian@example.net>\nOriginal-Rcpt-To: <parent@example.org>\n",
    "Removal-Recipient: guardian@example.net\nRemoval-Recipient: parent@example.org\n",
)
assert ARF != ONE_RECIPIENT_ARF and ARF2 != ARF


def _found(report: BounceReport) -> list[tuple[str | None, str]]:
    return [(v.recipient, v.reason) for v in report.verdicts]


def test_dsn_recipient_blocks_without_a_blank_line_are_still_two() -> None:
    assert _found(_parse(DSN2)) == [
        ("guardian@example.net", "userunknown"),
        ("parent@example.org", "mailboxfull"),
    ]


def test_arf_with_two_original_rcpt_to_gives_one_complaint_each() -> None:
    report = _parse(ARF)
    assert report.kind == "arf"
    assert _found(report) == [
        ("guardian@example.net", "feedback"),
        ("parent@example.org", "feedback"),
    ]
    assert all(v.category == "complaint" and not v.hard for v in report.verdicts)


def test_arf_with_removal_recipients_gives_one_complaint_each() -> None:
    assert _found(_parse(ARF2)) == [
        ("guardian@example.net", "feedback"),
        ("parent@example.org", "feedback"),
    ]


def test_arf_naming_a_recipient_twice_counts_it_once() -> None:
    text = ARF.replace("<parent@example.org>\n",
                       "<parent@example.org>\nRemoval-Recipient: Guardian@example.net\n")
    assert text != ARF
    assert [v.recipient for v in _parse(text).verdicts] == [
        "guardian@example.net",
        "parent@example.org",
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
