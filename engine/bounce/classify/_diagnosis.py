"""Turn the pieces of one failure (reply code, enhanced status, wording, command) into a reason.

Shared by ``classify_reply`` (our own SMTP attempt) and the bounce-mail parsers, so a reply
means the same thing whichever way it reaches mamoru.
"""

from __future__ import annotations

import re
from typing import Final

from engine.bounce.classify import reasons as r
from engine.bounce.classify._phrases import names_unknown_mailbox_plainly, phrase_reason, says
from engine.bounce.classify._rules import allowed

# RFC 3463 subject.detail → reason, for statuses whose meaning does not depend on the wording.
# x.0.0, x.7.0, x.7.1 and friends are deliberately absent: servers use them for anything, so
# the text has to decide.
_STATUS_REASONS: Final[dict[str, str]] = {
    "1.1": r.USER_UNKNOWN,
    "1.2": r.HOST_UNKNOWN,
    "1.3": r.USER_UNKNOWN,
    "1.4": r.USER_UNKNOWN,
    "1.6": r.HAS_MOVED,
    "1.7": r.REJECTED,
    "1.8": r.REJECTED,
    "1.10": r.NOT_ACCEPT,
    "2.0": r.FILTERED,
    "2.1": r.FILTERED,
    "2.2": r.MAILBOX_FULL,
    "2.3": r.EXCEED_LIMIT,
    "2.4": r.SYSTEM_ERROR,
    "3.0": r.SYSTEM_ERROR,
    "3.1": r.SYSTEM_FULL,
    "3.2": r.NOT_ACCEPT,
    "3.3": r.SYSTEM_ERROR,
    "3.4": r.MESG_TOO_BIG,
    "3.5": r.SYSTEM_ERROR,
    "4.0": r.NETWORK_ERROR,
    "4.1": r.NETWORK_ERROR,
    "4.2": r.NETWORK_ERROR,
    "4.3": r.SYSTEM_ERROR,
    "4.4": r.NOT_ACCEPT,
    "4.5": r.SYSTEM_FULL,
    "4.6": r.NETWORK_ERROR,
    "4.7": r.EXPIRED,
    "5.0": r.SYNTAX_ERROR,
    "5.1": r.SYNTAX_ERROR,
    "5.2": r.SYNTAX_ERROR,
    "5.3": r.TOO_MANY_CONN,
    "5.4": r.SYNTAX_ERROR,
    "5.5": r.SYNTAX_ERROR,
    "6.0": r.CONTENT_ERROR,
    "6.1": r.CONTENT_ERROR,
    "6.2": r.CONTENT_ERROR,
    "6.3": r.CONTENT_ERROR,
    "6.4": r.CONTENT_ERROR,
    "6.5": r.CONTENT_ERROR,
    "7.2": r.POLICY_VIOLATION,
    "7.3": r.SECURITY_ERROR,
    "7.4": r.SECURITY_ERROR,
    "7.5": r.SECURITY_ERROR,
    "7.6": r.SECURITY_ERROR,
    "7.7": r.SECURITY_ERROR,
    "7.8": r.SECURITY_ERROR,
    "7.9": r.SECURITY_ERROR,
    "7.10": r.SECURITY_ERROR,
    "7.11": r.FAILED_STARTTLS,
    "7.13": r.SUSPEND,
    "7.14": r.SECURITY_ERROR,
    "7.15": r.SECURITY_ERROR,
    "7.16": r.MAILBOX_FULL,
    "7.17": r.HAS_MOVED,
    "7.18": r.HAS_MOVED,
    "7.20": r.AUTH_FAILURE,
    "7.21": r.AUTH_FAILURE,
    "7.22": r.AUTH_FAILURE,
    "7.23": r.AUTH_FAILURE,
    "7.24": r.AUTH_FAILURE,
    "7.25": r.REQUIRE_PTR,
    "7.26": r.AUTH_FAILURE,
    "7.27": r.NOT_ACCEPT,
    "7.28": r.RATE_LIMITED,
}

# Statuses precise enough that they beat whatever the free text seems to say.
_DECISIVE: Final = frozenset(
    {
        "1.2",
        "1.6",
        "1.7",
        "1.8",
        "1.10",
        "2.2",
        "2.3",
        "3.2",
        "3.4",
        "7.13",
        "7.20",
        "7.21",
        "7.22",
        "7.23",
        "7.24",
        "7.25",
        "7.26",
        "7.27",
    }
)

# Generic statuses whose subject alone still names a reason: x.2.0 (the mailbox refused the
# mail: its filter) and x.6.0 (the content or media was refused).
_GENERIC_WITH_MEANING: Final = frozenset({"2.0", "6.0"})

# Temporary network statuses (RFC 3463 x.4.1 no answer, x.4.2 bad connection, x.4.7 delivery
# time expired) that, in a report of a delivery given up, mean the queue time ran out; in a
# delay notice (RFC 3464 action "delayed") they say the message is ageing in the queue.
QUEUE_TIMEOUTS: Final = frozenset({"4.4.1", "4.4.2", "4.4.7"})

# RFC 5321 section 4.2 reply codes whose meaning is defined narrowly enough to name a reason
# when neither a status nor the wording says anything: 501-504 are syntax and command errors,
# 552 "exceeded storage allocation" and 452 "insufficient system storage".
_CODE_REASONS: Final[dict[int, str]] = {
    501: r.SYNTAX_ERROR,
    502: r.SYNTAX_ERROR,
    503: r.SYNTAX_ERROR,
    504: r.SYNTAX_ERROR,
    552: r.MAILBOX_FULL,
    452: r.SYSTEM_FULL,
}

# Narrow readings of a mailbox's state that a bare 5.1.1 does not overrule.
_FINER_THAN_NO_MAILBOX: Final = frozenset({r.SUSPEND, r.MAILBOX_FULL, r.HOST_UNKNOWN})

# Reasons that blame the sending side (host, reputation, authentication), not the mailbox.
_ABOUT_THE_SENDER: Final = frozenset(
    {
        r.BLOCKED,
        r.SPAM_DETECTED,
        r.BAD_REPUTATION,
        r.REQUIRE_PTR,
        r.AUTH_FAILURE,
        r.SECURITY_ERROR,
        r.POLICY_VIOLATION,
        r.REJECTED,
        r.NO_RELAYING,
    }
)

_ENHANCED_RE: Final = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_CODE_WITH_STATUS_RE: Final = re.compile(r"(?<![\d.=])([245]\d\d)[ -]#?[245]\.\d{1,3}\.\d{1,3}")
_CODE_RE: Final = re.compile(r"(?:^|(?<=[\s:(\[<'\";]))([45][0-5]\d)(?=[ \-,;]|$)", re.MULTILINE)
_OK_CODE_RE: Final = re.compile(r"(?:^|(?<=[\s:(\[<'\";]))(2[0-5]\d)(?=[ \-]|$)", re.MULTILINE)


def find_enhanced_status(text: str) -> str | None:
    """Return the first RFC 3463 status (e.g. "5.1.1") written in the text, if any."""
    m = _ENHANCED_RE.search(text)
    if m is None:
        return None
    return f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"


def find_specific_status(text: str) -> str | None:
    """Return the first status in the text whose detail is not 0, else the first status."""
    first: str | None = None
    for m in _ENHANCED_RE.finditer(text):
        status = f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"
        if not is_generic(status):
            return status
        first = first or status
    return first


def find_reply_code(text: str) -> int | None:
    """Return the first SMTP reply code (e.g. 550) written in the text, if any."""
    # A code next to an enhanced status is certainly a reply code; a failure code beats 2xx,
    # which in a transcript is usually an earlier, successful step.
    for pattern in (_CODE_WITH_STATUS_RE, _CODE_RE, _OK_CODE_RE):
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def reason_from_status(status: str | None) -> str | None:
    """Return the reason an enhanced status implies on its own, or None when it is ambiguous."""
    if not status:
        return None
    _, _, rest = status.partition(".")
    if status.startswith("2."):
        return r.DELIVERED
    return _STATUS_REASONS.get(rest)


def is_generic(status: str) -> bool:
    """True for an RFC 3463 status whose detail is 0 ("other or undefined" in its subject)."""
    return status.endswith(".0")


def _is_trusted(status: str) -> bool:
    """True when a status is specific enough to outrank broad wording.

    Detail 0 means "other" (RFC 3463). Security or policy (x.7.x) codes are used by servers
    for every kind of refusal, and a permanent x.4.x (network) code is often a relay's label
    for a refusal it passed on; neither says more than broad wording does.
    """
    if is_generic(status):
        return False
    subject = status.split(".")[1]
    if subject == "7":
        return False
    return not (subject == "4" and status.startswith("5"))


def is_temporary(status: str | None, code: int | None) -> bool:
    """True when the status or reply code says the failure is temporary (4xx / 4.x.x)."""
    if status:
        return status.startswith("4")
    return code is not None and 400 <= code < 500


def _clear_user_unknown(
    *, status: str | None, text: str, fallback_texts: tuple[str, ...], command: str | None
) -> str | None:
    """Return the reason for a failure that plainly names a missing mailbox, else None.

    RFC 3463 5.1.1 means "bad destination mailbox address", and wording such as "user unknown"
    or "mailbox not found" says the same in words; either outranks whatever else the reply
    says ("rejected", "blocked by policy", "filtered"), which is then the server's boilerplate.
    Exceptions, where a finer or different reading is already established:

    - a status decisive for something else (x.1.2 domain, x.1.6 moved, x.1.7 sender, ...);
    - wording that refuses our envelope sender: the unknown user is then ours;
    - wording that says the mailbox moved (``hasmoved`` is finer than ``userunknown``);
    - 5.1.1 without such plain wording, but narrow wording of a suspended account, a full
      mailbox or a missing domain (qmail, for one, writes #5.1.1 after any mailbox trouble);
    - plain wording without 5.1.1 that did not answer RCPT: after DATA the server had accepted
      the mailbox at RCPT (RFC 5321 order of commands), so it is the recipient's filter
      speaking, and a bounce that does not say which command failed is read the same way, as
      Sisimai reads it; the status 5.1.1 or the RCPT command settle it for the mailbox.

    The fallback texts (the whole bounce, its subject) are read only when the reply's own
    wording says nothing.
    """
    subject_detail = status.partition(".")[2] if status else ""
    if subject_detail in _DECISIVE:
        return None
    texts = (text, *fallback_texts) if phrase_reason(text) is None else (text,)
    if any(says("sender refused", t) or says("moved", t) for t in texts):
        return None
    plainly = any(says("user unknown", t) for t in texts)
    if status == "5.1.1" and not plainly:
        found = next((f for f in map(phrase_reason, texts) if f is not None), None)
        if found is not None and found[0] in _FINER_THAN_NO_MAILBOX and not found[1]:
            return None
        return r.USER_UNKNOWN
    if not plainly:
        return None
    words = (command or "").upper().split()
    if status != "5.1.1" and words[:1] != ["RCPT"] and allowed("command:user unknown not at RCPT"):
        return r.FILTERED
    return r.USER_UNKNOWN


def decide_reason(
    *,
    status: str | None,
    code: int | None,
    text: str,
    command: str | None = None,
    fallback_texts: tuple[str, ...] = (),
    final: bool = False,
) -> str:
    """Combine status, wording and command into one reason name, most trusted evidence first.

    ``text`` is the reply itself; ``fallback_texts`` (e.g. the whole bounce, its subject) are
    read, in order, only when the reply's own wording says nothing. ``final`` is True for a
    bounce mail that reports a delivery given up, where a temporary failure means the message
    expired in the sender's queue.

    Order of trust: wording that names a missing mailbox beyond doubt; RFC 3463 5.1.1 or
    wording that says plainly the mailbox does not exist (``_clear_user_unknown``); an RFC
    3463 status whose meaning is precise; narrow wording; any other specific status (detail
    not 0); broad wording; a generic status (detail 0); the SMTP command refused; the reply
    class.
    """
    # Checked before the status: Exchange reports a missing mailbox as 5.1.10, which RFC 7505
    # gives to null MX.
    if any(names_unknown_mailbox_plainly(t) for t in (text, *fallback_texts)):
        return r.USER_UNKNOWN
    clear = _clear_user_unknown(
        status=status, text=text, fallback_texts=fallback_texts, command=command
    )
    if clear is not None:
        return clear
    by_status = reason_from_status(status)
    subject_detail = status.partition(".")[2] if status else ""
    if by_status is not None and subject_detail in _DECISIVE:
        return by_status
    if final and status in QUEUE_TIMEOUTS:
        # No answer, bad connection, delivery time expired: after the sender's queue gave up,
        # these temporary network statuses mean the message expired.
        by_status = r.EXPIRED
    found = phrase_reason(text)
    if found is None:
        for extra in fallback_texts:
            found = phrase_reason(extra)
            if found is not None:
                break
    by_text, weak = found if found else (None, False)
    if (
        by_text == r.USER_UNKNOWN
        and by_status != r.USER_UNKNOWN
        and command != "RCPT"
        and allowed("command:user unknown not at RCPT")
    ):
        # "User unknown" after DATA cannot be about the mailbox, which the server accepted at
        # RCPT: it is the recipient's filter speaking (Sisimai reads it the same way).
        return r.FILTERED
    if by_status == r.USER_UNKNOWN and by_text in _ABOUT_THE_SENDER:
        # x.1.1 and x.1.3 are about the recipient's mailbox (RFC 3463); wording about our host
        # in the same reply is the server's boilerplate (block-list links, policy notes).
        return by_status
    cmd = (command or "").upper()
    if (
        cmd in ("CONNECT", "HELO", "EHLO")
        and code is not None
        and code >= 500
        and (by_text is None or weak)
        and by_status is None
    ):
        # Refused before any address was named: the server refuses our host, whatever broad
        # words ("access denied", "rejected") it uses for that.
        return r.BLOCKED
    specific = by_status is not None and status is not None and _is_trusted(status)
    if by_text is not None and not (weak and specific):
        return by_text
    if by_status is not None and specific:
        return by_status
    if by_text is not None:
        return by_text
    if (
        by_status is not None
        and status is not None
        and (not is_generic(status) or subject_detail in _GENERIC_WITH_MEANING)
    ):
        return by_status
    by_code = _CODE_REASONS.get(code) if code is not None else None
    if by_code is not None:
        return by_code
    if cmd in ("CONNECT", "HELO", "EHLO") and code is not None and code >= 500:
        # A server that refuses us before any address is named is refusing the sender host.
        return r.BLOCKED
    if cmd == "MAIL" and code is not None and code >= 500:
        # Refused at MAIL FROM without a word on why: in practice the sending host is refused.
        return r.BLOCKED
    if cmd == "DATA" and code is not None and code >= 500:
        return r.REJECTED
    if final and is_temporary(status, code) and (status is None or status.startswith("4.4.")):
        # A report that gives up after temporary (network or routing) failures: RFC 3463's
        # x.4.x, or a bare 4xx reply, became final because the message outlived its queue time.
        return r.EXPIRED
    return r.UNDEFINED
