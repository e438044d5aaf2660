"""The reason names a bounce can be given, and which of them mean the address itself is bad.

Reason names follow Sisimai's (https://libsisimai.org/en/reason/) so that mamoru's verdicts can
be compared with that analyser one to one.
"""

from __future__ import annotations

from typing import Final

USER_UNKNOWN: Final = "userunknown"
HAS_MOVED: Final = "hasmoved"
HOST_UNKNOWN: Final = "hostunknown"
MAILBOX_FULL: Final = "mailboxfull"
MESG_TOO_BIG: Final = "mesgtoobig"
EXCEED_LIMIT: Final = "exceedlimit"
FILTERED: Final = "filtered"
REJECTED: Final = "rejected"
BLOCKED: Final = "blocked"
SPAM_DETECTED: Final = "spamdetected"
BAD_REPUTATION: Final = "badreputation"
REQUIRE_PTR: Final = "requireptr"
AUTH_FAILURE: Final = "authfailure"
SECURITY_ERROR: Final = "securityerror"
POLICY_VIOLATION: Final = "policyviolation"
NOT_COMPLIANT_RFC: Final = "notcompliantrfc"
TOO_MANY_CONN: Final = "toomanyconn"
SPEEDING: Final = "speeding"
RATE_LIMITED: Final = "ratelimited"
SYSTEM_FULL: Final = "systemfull"
SUSPEND: Final = "suspend"
EXPIRED: Final = "expired"
NETWORK_ERROR: Final = "networkerror"
SYSTEM_ERROR: Final = "systemerror"
MAILER_ERROR: Final = "mailererror"
NOT_ACCEPT: Final = "notaccept"
NO_RELAYING: Final = "norelaying"
FAILED_STARTTLS: Final = "failedstarttls"
SYNTAX_ERROR: Final = "syntaxerror"
CONTENT_ERROR: Final = "contenterror"
VIRUS_DETECTED: Final = "virusdetected"
VACATION: Final = "vacation"
FEEDBACK: Final = "feedback"
ON_HOLD: Final = "onhold"
DELIVERED: Final = "delivered"
UNDEFINED: Final = "undefined"

ALL_REASONS: Final[frozenset[str]] = frozenset(
    {
        USER_UNKNOWN,
        HAS_MOVED,
        HOST_UNKNOWN,
        MAILBOX_FULL,
        MESG_TOO_BIG,
        EXCEED_LIMIT,
        FILTERED,
        REJECTED,
        BLOCKED,
        SPAM_DETECTED,
        BAD_REPUTATION,
        REQUIRE_PTR,
        AUTH_FAILURE,
        SECURITY_ERROR,
        POLICY_VIOLATION,
        NOT_COMPLIANT_RFC,
        TOO_MANY_CONN,
        SPEEDING,
        RATE_LIMITED,
        SYSTEM_FULL,
        SUSPEND,
        EXPIRED,
        NETWORK_ERROR,
        SYSTEM_ERROR,
        MAILER_ERROR,
        NOT_ACCEPT,
        NO_RELAYING,
        FAILED_STARTTLS,
        SYNTAX_ERROR,
        CONTENT_ERROR,
        VIRUS_DETECTED,
        VACATION,
        FEEDBACK,
        ON_HOLD,
        DELIVERED,
        UNDEFINED,
    }
)

# Only these say something about the address itself; every other reason is about the message,
# the sender, or the moment, and sending to the address again can succeed.
_ADDRESS_IS_BAD: Final = frozenset({USER_UNKNOWN, HAS_MOVED, HOST_UNKNOWN})
# notaccept (a null MX, a domain that takes no mail) is hard too, when permanent.


def is_hard(reason: str, status: str | None = None, reply_code: int | None = None) -> bool:
    """Return True when the reason means the address should be suppressed, not retried.

    A temporary failure (4xx reply or 4.x.x status) is never hard, whatever its wording: a
    "450 mailbox unavailable" or a 4xx "not accepting mail" can clear up, and suppressing a
    guardian's address by mistake costs more than one more retry.
    """
    if reason not in _ADDRESS_IS_BAD and reason != NOT_ACCEPT:
        return False
    if status:
        return not status.startswith("4")
    return not (reply_code is not None and 400 <= reply_code < 500)
