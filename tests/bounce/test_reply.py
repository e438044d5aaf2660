"""Classifying the SMTP replies of mamoru's own delivery attempts, carriers included."""

from __future__ import annotations

import pytest

from engine.bounce import classify_reply


def test_rcpt_user_unknown_with_5_1_1_is_a_hard_unknown_user() -> None:
    v = classify_reply(550, "5.1.1", "5.1.1 <taro@example.jp>: User unknown", "RCPT")
    assert (v.reason, v.category, v.hard, v.action, v.source) == (
        "userunknown",
        "unknown_user",
        True,
        "failed",
        "smtp",
    )


def test_enhanced_status_is_read_from_the_text_when_not_given() -> None:
    v = classify_reply(552, None, "552 5.2.2 Mailbox full", "RCPT", "a@example.jp")
    assert v.status == "5.2.2"
    assert v.reason == "mailboxfull"
    assert v.hard is False


def test_temporary_user_unknown_is_never_hard() -> None:
    v = classify_reply(450, "4.1.1", "4.1.1 <a@example.jp>: Recipient address unknown", "RCPT")
    assert v.hard is False
    assert v.action == "delayed"


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "reason"),
    [
        (
            550,
            "5.7.26",
            "Unauthenticated email from example.jp is not accepted due to DMARC",
            "authfailure",
        ),
        (
            421,
            "4.7.0",
            "[TSS04] Messages temporarily deferred due to user complaints",
            "badreputation",
        ),
        (554, "5.7.1", "Client host rejected: blocked using zen.spamhaus.org", "blocked"),
        (552, "5.3.4", "Message size exceeds fixed limit", "mesgtoobig"),
        (550, "5.1.2", "Host or domain name not found", "hostunknown"),
        (556, "5.1.10", "Recipient address has null MX", "notaccept"),
        (550, "5.7.1", "Message rejected as spam by Content Filtering", "spamdetected"),
        (421, "4.7.0", "Too many concurrent connections from your host", "toomanyconn"),
        (550, "5.7.1", "Relaying denied", "norelaying"),
        (554, "5.7.1", "Message contains a virus", "virusdetected"),
    ],
)
def test_reply_wording_and_status_give_the_expected_reason(
    code: int, enhanced: str, text: str, reason: str
) -> None:
    assert classify_reply(code, enhanced, text, "RCPT").reason == reason


def test_refusal_at_mail_from_without_explanation_is_blocked() -> None:
    assert classify_reply(550, None, "550 Go away", "MAIL").reason == "blocked"


def test_successful_reply_is_delivered() -> None:
    v = classify_reply(250, "2.0.0", "2.0.0 Ok: queued as 12345", "DATA")
    assert (v.reason, v.action, v.hard) == ("delivered", "delivered", False)


def test_connection_timeout_without_reply_is_a_network_error_to_retry() -> None:
    v = classify_reply(None, None, "connect to mx.example.jp[192.0.2.1]:25: Connection timed out")
    assert v.reason == "networkerror"
    assert v.category == "network_expired"
    assert (v.hard, v.action) == (False, "delayed")


def test_connection_refused_without_reply_is_a_network_error() -> None:
    assert classify_reply(None, None, "Connection refused", "CONNECT").reason == "networkerror"


def test_dns_failure_without_reply_is_an_unknown_host() -> None:
    v = classify_reply(None, None, "Host or domain name not found (NXDOMAIN)", None, "a@nx.example")
    assert (v.reason, v.hard) == ("hostunknown", True)


def test_docomo_unknown_user_at_rcpt_is_user_unknown() -> None:
    v = classify_reply(550, None, "Unknown user taro@docomo.ne.jp", "RCPT", "taro@docomo.ne.jp")
    assert (v.reason, v.hard) == ("userunknown", True)


def test_docomo_unknown_user_after_data_is_filtered_because_filters_answer_the_same() -> None:
    v = classify_reply(550, None, "Unknown user taro@docomo.ne.jp", "DATA", "taro@docomo.ne.jp")
    assert (v.reason, v.hard) == ("filtered", False)


def test_docomo_too_many_recipients_is_too_many_connections() -> None:
    v = classify_reply(552, None, "Too many recipients", "RCPT", "taro@docomo.ne.jp")
    assert v.reason == "toomanyconn"


def test_docomo_too_much_mail_data_is_mailbox_full() -> None:
    v = classify_reply(552, None, "Too much mail data", "DATA", "taro@docomo.ne.jp")
    assert v.reason == "mailboxfull"


def test_docomo_status_5_2_0_is_filtered() -> None:
    v = classify_reply(550, "5.2.0", "Message rejected", "DATA", domain="docomo.ne.jp")
    assert v.reason == "filtered"


def test_kddi_user_unknown_without_address_is_filtered() -> None:
    v = classify_reply(550, None, "550 : User unknown", "DATA", "hanako@ezweb.ne.jp")
    assert (v.reason, v.category, v.hard) == ("filtered", "refused", False)


def test_kddi_user_unknown_with_address_is_user_unknown() -> None:
    v = classify_reply(
        550, None, "550 <hanako@ezweb.ne.jp>: User unknown", "RCPT", "hanako@ezweb.ne.jp"
    )
    assert (v.reason, v.hard) == ("userunknown", True)


def test_kddi_relay_access_denied_means_a_malformed_address() -> None:
    v = classify_reply(554, None, "554 Relay access denied", "RCPT", "foo.@au.com")
    assert (v.reason, v.hard) == ("userunknown", True)


def test_softbank_invalid_recipient_is_user_unknown() -> None:
    v = classify_reply(550, None, "550 Invalid recipient", "RCPT", "jiro@i.softbank.jp")
    assert (v.reason, v.hard) == ("userunknown", True)


def test_softbank_refusing_our_sender_domain_is_rejected_not_the_recipients_fault() -> None:
    v = classify_reply(
        553, None, "553 <school.example.jp> does not exist", "MAIL", "jiro@softbank.ne.jp"
    )
    assert (v.reason, v.hard) == ("rejected", False)


def test_non_carrier_domain_gets_no_carrier_rule() -> None:
    v = classify_reply(550, None, "550 : User unknown", "RCPT", "a@example.com")
    assert v.reason == "userunknown"


def test_unintelligible_reply_is_undefined_and_soft() -> None:
    v = classify_reply(554, None, "554 nope", "RCPT")
    assert (v.reason, v.category, v.hard) == ("undefined", "other", False)


def test_exchange_online_recipient_not_found_is_user_unknown_despite_5_1_10() -> None:
    text = "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    v = classify_reply(550, "5.1.10", text, "RCPT", "a@contoso.example")
    assert (v.reason, v.hard) == ("userunknown", True)


def test_null_mx_5_1_10_without_such_wording_is_not_accept() -> None:
    v = classify_reply(556, "5.1.10", "Recipient address has null MX", "RCPT")
    assert (v.reason, v.category, v.hard) == ("notaccept", "unknown_domain", True)


def test_helo_rejected_for_unknown_host_blames_our_host_not_the_recipient() -> None:
    v = classify_reply(
        554, "5.7.1", "<mta.school.example.jp>: Helo command rejected: Host not found", "RCPT"
    )
    assert (v.reason, v.hard) == ("blocked", False)
