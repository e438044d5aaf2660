"""Tracing and switching off learnt rules, which the accuracy benchmark's left-out figures use."""

from __future__ import annotations

from engine.bounce import classify_reply
from engine.bounce.classify._rules import allowed, is_tracing, tracing

REPLY = (550, None, "550 Sorry, the mailbox is over quota")
MEANING = "phrase:mailboxfull:the mailbox is over quota"


def test_outside_tracing_every_rule_is_allowed_and_nothing_is_recorded() -> None:
    assert not is_tracing()
    assert allowed("phrase:anything:at all")


def test_tracing_records_the_meaning_and_the_wording_that_decided() -> None:
    with tracing() as trace:
        verdict = classify_reply(*REPLY)
    assert verdict.reason == "mailboxfull"
    assert MEANING in trace.fired
    assert any(rule.startswith("wording:phrase:mailboxfull:") for rule in trace.fired)


def test_switching_off_a_meaning_changes_the_verdict_and_leaves_others_alone() -> None:
    with tracing(frozenset({MEANING})):
        without = classify_reply(*REPLY)
        other = classify_reply(550, None, "550 user unknown", command="RCPT")
    assert without.reason != "mailboxfull"
    assert other.reason == "userunknown"


def test_traced_and_untraced_classification_agree() -> None:
    with tracing():
        traced = classify_reply(*REPLY)
    assert classify_reply(*REPLY) == traced
