"""Classify the SMTP reply of mamoru's own delivery attempt, with Japanese carriers' quirks.

``classify_reply`` is what the delivery runner calls after each failed (or refused) attempt,
including attempts that never got a reply (connection refused, timeout): those arrive with
``code=None`` and a text describing the error.

The carrier rules restate, as facts, replies documented in the project's carrier research notes
and in Sisimai's rules for NTT docomo, KDDI (au) and SoftBank; the code is mamoru's own.
"""

from __future__ import annotations

import re
from typing import Final

from engine.bounce.classify import reasons as r
from engine.bounce.classify._diagnosis import decide_reason, find_enhanced_status, is_temporary
from engine.bounce.classify._phrases import reason_from_text
from engine.bounce.classify._rules import allowed
from engine.bounce.classify._verdict import Verdict, make_verdict

_DOCOMO: Final = frozenset({"docomo.ne.jp", "mopera.net", "dwmail.jp"})
_KDDI: Final = frozenset({"ezweb.ne.jp", "au.com", "biz.ezweb.ne.jp", "biz.au.com", "uqmobile.jp"})
_SOFTBANK: Final = frozenset(
    {"softbank.ne.jp", "i.softbank.jp", "disney.ne.jp", "vodafone.ne.jp", "ymobile.ne.jp"}
)

# Connection-level errors can only mean a few things; anything else is a network error.
_CONNECTION_REASONS: Final = frozenset(
    {
        r.NETWORK_ERROR,
        r.EXPIRED,
        r.HOST_UNKNOWN,
        r.NOT_ACCEPT,
        r.FAILED_STARTTLS,
        r.SECURITY_ERROR,
        r.TOO_MANY_CONN,
        r.BLOCKED,
        r.SYSTEM_ERROR,
    }
)
_LEADING_CODE_RE: Final = re.compile(r"^\s*([245]\d\d)(?:[\s-]|$)")
_STATUS_RE: Final = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_KDDI_ADDRESSED_UNKNOWN_RE: Final = re.compile(r"@[^\s<>]+>?\s*:\s*user unknown", re.IGNORECASE)


def _domain_of(recipient: str | None, domain: str | None) -> str:
    if domain:
        return domain.strip().lower().rstrip(".")
    if recipient and "@" in recipient:
        return recipient.rsplit("@", 1)[1].strip(" >").lower()
    return ""


def _carrier(domain: str) -> str | None:
    for name, domains in (("docomo", _DOCOMO), ("kddi", _KDDI), ("softbank", _SOFTBANK)):
        if domain in domains or any(domain.endswith("." + d) for d in domains):
            return name
    return None


def apply_carrier_rules(
    reason: str,
    code: int | None,
    text: str,
    recipient: str | None,
    domain: str | None = None,
    status: str | None = None,
    command: str | None = None,
) -> str:
    """Return the reason corrected for the recipient's mobile carrier, if it has known quirks."""
    carrier = _carrier(_domain_of(recipient, domain))
    lowered = text.lower()
    if carrier == "docomo":
        if "too many recipients" in lowered and allowed("carrier:docomo:too many recipients"):
            return r.TOO_MANY_CONN
        if "too much mail data" in lowered and allowed("carrier:docomo:too much mail data"):
            return r.MAILBOX_FULL
        if ("unknown user" in lowered or "user unknown" in lowered) and allowed(
            "carrier:docomo:unknown user"
        ):
            # docomo answers "550 Unknown user" at RCPT for a missing mailbox, but after DATA
            # also when the recipient's own reception filter refuses the mail.
            return r.USER_UNKNOWN if command == "RCPT" else r.FILTERED
        if status == "5.2.0" and allowed("carrier:docomo:5.2.0"):
            return r.FILTERED
    elif carrier == "kddi":
        # KDDI names the address when the mailbox does not exist ("550 <x@ezweb.ne.jp>: User
        # unknown"); the bare form is what its reception filter answers, and the address is fine.
        if _KDDI_ADDRESSED_UNKNOWN_RE.search(text) and allowed("carrier:kddi:<addr>: user unknown"):
            return r.USER_UNKNOWN
        if "user unknown" in lowered and allowed("carrier:kddi:bare user unknown"):
            return r.FILTERED
        if (
            "relay access denied" in lowered
            and code is not None
            and code >= 500
            and allowed("carrier:kddi:relay access denied")
        ):
            # KDDI answers malformed (non-FQDN, RFC-breaking) recipient addresses this way.
            return r.USER_UNKNOWN
    elif carrier == "softbank":
        if "invalid recipient" in lowered and allowed("carrier:softbank:invalid recipient"):
            return r.USER_UNKNOWN
        if code == 553 and "does not exist" in lowered and allowed("carrier:softbank:553"):
            # Our envelope sender's domain has no DNS records: the sender is refused.
            return r.REJECTED
    return reason


_QUEUE_EXPIRY_RE: Final = re.compile(r"expire|queue|gave up|giving up|too long", re.IGNORECASE)
_EXPLICIT_BLOCK_RE: Final = re.compile(r"block|black ?list|listed|banned|spam", re.IGNORECASE)


def _reason_without_reply(text: str) -> str:
    """Reason for an attempt that got no SMTP reply (refused, reset, timed out, DNS failure).

    The wording rules are written for bounce mails, where "timed out" means the queue gave up
    and "connection refused" usually comes with a block notice; for our own attempt both are
    plain network trouble unless the text says more.
    """
    reason = reason_from_text(text)
    if reason == r.EXPIRED and not _QUEUE_EXPIRY_RE.search(text):
        return r.NETWORK_ERROR
    if reason == r.BLOCKED and not _EXPLICIT_BLOCK_RE.search(text):
        return r.NETWORK_ERROR
    return reason if reason in _CONNECTION_REASONS else r.NETWORK_ERROR


def _action_for(code: int | None, status: str | None) -> str:
    if code is not None and 200 <= code < 300:
        return "delivered"
    if is_temporary(status, code) or code is None:
        return "delayed"
    return "failed"


def classify_reply(
    code: int | None,
    enhanced: str | None,
    text: str,
    command: str | None = None,
    recipient: str | None = None,
    domain: str | None = None,
) -> Verdict:
    """Classify one SMTP reply (or connection error when ``code`` is None) into a verdict.

    ``command`` is the SMTP step the reply answered ("CONNECT", "EHLO", "MAIL", "RCPT",
    "DATA"); ``domain`` defaults to the recipient's domain and selects carrier rules.
    """
    text = text or ""
    status = enhanced.strip() if enhanced and _STATUS_RE.match(enhanced.strip()) else None
    if status is None:
        status = find_enhanced_status(text)
    if code is None:
        m = _LEADING_CODE_RE.match(text)
        code = int(m.group(1)) if m else None
    if code is None and status is None:
        reason = _reason_without_reply(text)
    elif code is not None and 200 <= code < 300:
        reason = r.DELIVERED
    else:
        reason = decide_reason(status=status, code=code, text=text, command=command)
        reason = apply_carrier_rules(reason, code, text, recipient, domain, status, command)
    return make_verdict(
        recipient=recipient,
        reply_code=code,
        status=status,
        diagnostic=" ".join(text.split())[:1000],
        reason=reason,
        action=_action_for(code, status),
        source="smtp",
    )
