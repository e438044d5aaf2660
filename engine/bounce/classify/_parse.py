"""Read a whole received bounce, feedback report or auto-reply and return per-recipient verdicts.

The order of recognition is: complaint report (ARF) → provider JSON notification (Amazon SES)
→ standard DSN (RFC 3464) → human-readable bounce → auto-reply → unknown. ``parse_bounce``
never raises: a mail it cannot read becomes ``kind="unknown"`` with no verdicts, which the
engine stores as unclassified for a person to look at.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import Message
from typing import Final

from engine.bounce.classify import reasons as r
from engine.bounce.classify._diagnosis import (
    QUEUE_TIMEOUTS,
    decide_reason,
    find_enhanced_status,
    find_reply_code,
    find_specific_status,
    is_generic,
    is_temporary,
    reason_from_status,
)
from engine.bounce.classify._dsn import DsnRecipient, delivery_status_text, read_recipients
from engine.bounce.classify._feedback import (
    feedback_recipients,
    feedback_text,
    fields_in_text,
    has_inline_report,
    is_autoreply,
    is_unsubscribe_request,
    jmrp_recipient,
)
from engine.bounce.classify._mime import (
    MAX_PARTS,
    MAX_TEXT_CHARS,
    addresses_in,
    decode_header_value,
    first_address,
    load_message,
    part_text,
)
from engine.bounce.classify._nonstandard import TextRecipient, find_recipients, report_section
from engine.bounce.classify._phrases import phrase_reason, reason_from_text
from engine.bounce.classify._reply import apply_carrier_rules
from engine.bounce.classify._rules import allowed
from engine.bounce.classify._ses import json_notification
from engine.bounce.classify._verdict import BounceReport, ReportKind, Verdict, make_verdict

_DSN_TYPES: Final = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ORIGINAL_TYPES: Final = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
_BOUNCE_SENDER_RE: Final = re.compile(
    r"mailer-?daemon|postmaster|mail ?delivery|post_master|bounce|mdaemon|mail administrator"
    r"|system administrator|mail ?system",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE: Final = re.compile(
    r"undeliver|undelivered|delivery|deliverable|returned|failure|failed|bounce|not delivered|"
    r"could not|rejected|error|notification|warning|loop alert|unzustellbar|non remis|"
    r"配信|配送|返送|不達|エラー|送信できません|届",
    re.IGNORECASE,
)
# Ways bounces say which SMTP command the remote server refused; group 1 is the command.
# Words are apart by any white space: Postfix folds its "(in reply to RCPT TO command)" over
# two lines of the human-readable part whenever the reply before it is long.
_COMMAND_PATTERNS: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"(?:after|in\s+reply\s+to|response\s+to|during|while|for|at)\s+(?:the\s+)?"
        r"(?:final\s+|our\s+|initial\s+)?"
        r"(RCPT\s+TO|RCPT|MAIL\s+FROM|MAIL|DATA|end\s+of\s+data|EHLO|HELO|TEXT"
        r"|connect(?:ion)?|greeting)\b",
        r"did not like (?:our\s+)?(?:final\s+)?(RCPT|MAIL|DATA)",
        r"does not like (recipient)",
        r"(sender) was rejected",
        r"SMTP:\s*(RCPT|MAIL|DATA)",
        r"\[(RCPT_TO|MAIL_FROM|DATA)\]",
        r"\((DATA|RCPT TO|MAIL FROM)\)",
        r"SMTP command\s*\n\s*(DATA|RCPT|MAIL)",
    )
)
_TRANSCRIPT_SENT_RE: Final = re.compile(r"^\s*>>>\s*(RCPT|MAIL|DATA|EHLO|HELO)", re.IGNORECASE)
_TRANSCRIPT_REPLY_RE: Final = re.compile(r"^\s*<<<\s*[45]\d\d")
_CODE_LINE_RE: Final = re.compile(r"(?<![\d.])[245]\d\d(?![\d.])|[245]\.\d{1,3}\.\d{1,3}")
_HEADER_LINE_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:\s")
_DELAY_RE: Final = re.compile(
    r"will (?:be )?retr|still trying|delayed|not yet been delivered", re.IGNORECASE
)
_MAX_DIAGNOSTIC: Final = 1000
# Delivery-status fields written into a plain-text body (no message/delivery-status part).
_INLINE_DSN_RE: Final = re.compile(r"^(?:final|original)-recipient\s*:\s*rfc822", re.I | re.M)


def parse_bounce(raw: bytes) -> BounceReport:
    """Classify one received mail; never raises, whatever the bytes."""
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001 - by contract a bad mail is "unknown", never an exception
        return BounceReport(kind="unknown")


class _Mail:
    """The pieces of a received mail that the recognisers share."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.subject = decode_header_value(message.get("Subject"))
        self.texts: list[str] = []
        self.dsn_parts: list[Message] = []
        self.feedback_parts: list[Message] = []
        self.original: Message | None = None
        self._collect(message, 0)
        self.body = "\n".join(self.texts)[:MAX_TEXT_CHARS]

    def _collect(self, part: Message, count: int) -> int:
        if count >= MAX_PARTS:
            return count
        count += 1
        ctype = part.get_content_type()
        if ctype in _DSN_TYPES:
            self.dsn_parts.append(part)
        elif ctype == "message/feedback-report":
            self.feedback_parts.append(part)
        elif ctype in _ORIGINAL_TYPES:
            if self.original is None:
                self.original = _original_from_part(part)
                # A complaint forwarded by a person arrives as an attached mail that is itself
                # the report: its feedback part still counts.
                if self.original is not None and self.original.is_multipart():
                    self.feedback_parts.extend(_feedback_parts(self.original))
        elif part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        count = self._collect(sub, count)
        elif part.get_content_maintype() == "text":
            self.texts.append(part_text(part))
        elif part.get_content_maintype() in ("multipart", "message"):
            # A multipart whose boundary is missing or wrong arrives as one unparsed string;
            # its text is still the report, so read it as such.
            raw = part.get_payload()
            if isinstance(raw, str):
                self.texts.append(raw[:MAX_TEXT_CHARS])
        return count


def _feedback_parts(message: Message) -> list[Message]:
    found: list[Message] = []
    for count, sub in enumerate(message.walk()):
        if count >= MAX_PARTS:
            break
        if sub.get_content_type() == "message/feedback-report":
            found.append(sub)
    return found


def _original_from_part(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part_text(part)
    return email.message_from_string(text.lstrip(), policy=policy.compat32) if text else None


def _original_from_text(body: str, report: str) -> Message | None:
    """Parse the quoted original that follows the report section of a plain-text bounce."""
    rest = body[len(report) :]
    lines = rest.split("\n")
    # Skip the marker line itself and any blank or decoration lines after it.
    start = 0
    while start < len(lines) and not _HEADER_LINE_RE.match(lines[start]):
        start += 1
        if start > 5:
            return None
    if start >= len(lines):
        return None
    return email.message_from_string("\n".join(lines[start:]), policy=policy.compat32)


def _identifiers(original: Message | None) -> tuple[str | None, str | None, str | None]:
    if original is None:
        return None, None, None
    message_id = decode_header_value(original.get("Message-ID")) or None
    delivery_id = decode_header_value(original.get("X-Mamoru-Delivery")) or None
    return_path = first_address(decode_header_value(original.get("Return-Path")))
    return message_id, delivery_id, return_path


def _parse(raw: bytes) -> BounceReport:
    return _parse_message(load_message(raw), depth=0)


def _parse_message(message: Message, depth: int) -> BounceReport:
    mail = _Mail(message)
    report = report_section(mail.body)
    if mail.original is None and report != mail.body:
        mail.original = _original_from_text(mail.body, report)
    message_id, delivery_id, return_path = _identifiers(mail.original)

    def done(kind: ReportKind, verdicts: list[Verdict]) -> BounceReport:
        return BounceReport(
            kind=kind if verdicts else "unknown",
            verdicts=verdicts,
            message_id=message_id,
            delivery_id=delivery_id,
            return_path=return_path,
        )

    report_type = str(message.get_param("report-type", "") or "").lower()
    jmrp = jmrp_recipient(message, mail.original)
    if (
        mail.feedback_parts
        or report_type == "feedback-report"
        or jmrp is not None
        or is_unsubscribe_request(message)
        or has_inline_report(mail.body)
    ):
        return done("arf", _feedback_verdicts(mail, jmrp))
    notification = json_notification(mail.body)
    if notification is not None:
        return done("dsn", notification)
    if mail.dsn_parts or _INLINE_DSN_RE.search(mail.body):
        verdicts = _dsn_verdicts(mail, report)
        if verdicts:
            return done("dsn", verdicts)
    if (
        depth < 2
        and mail.original is not None
        and _is_forwarded_bounce(mail, mail.original, report)
    ):
        # A bounce of a bounce, or a bounce forwarded by a person: the attached mail is the
        # one that names the failed recipients.
        inner = _parse_message(mail.original, depth + 1)
        if inner.verdicts:
            return inner
    if _looks_like_bounce(mail, report):
        verdicts = _text_verdicts(mail, report)
        if verdicts:
            return done("nonstandard", verdicts)
    if is_autoreply(message):
        return done("autoreply", _autoreply_verdicts(mail))
    return done("unknown", [])


def _looks_like_bounce(mail: _Mail, report: str) -> bool:
    sender = decode_header_value(mail.message.get("From"))
    if _BOUNCE_SENDER_RE.search(sender) or _BOUNCE_SENDER_RE.search(
        str(mail.message.get("Return-Path", ""))
    ):
        return True
    if _BOUNCE_SUBJECT_RE.search(mail.subject):
        return True
    if mail.message.get("X-Failed-Recipients"):
        return True
    if mail.message.get_content_type() == "multipart/report":
        return True
    says_why = bool(_CODE_LINE_RE.search(report)) or reason_from_text(report) is not None
    if says_why and str(mail.message.get("Auto-Submitted", "")).lower().startswith(
        "auto-generated"
    ):
        # RFC 3834: a mail generated by software, not a person's reply, that names a failure.
        return True
    if is_autoreply(mail.message):
        return False
    # A mail at the bounce address that names a failure in narrow words is a bounce even
    # without codes (Japanese notices often carry none); broad words alone are not enough.
    found = phrase_reason(report)
    if found is not None and not found[1]:
        return True
    return bool(_CODE_LINE_RE.search(report)) and found is not None


def _is_forwarded_bounce(mail: _Mail, original: Message, report: str) -> bool:
    """True when the outer report names no recipient but the attached mail is itself a bounce."""
    if find_recipients(report, _excluded_addresses(mail)):
        return False
    inner_type = original.get_content_type()
    inner_from = decode_header_value(original.get("From"))
    return inner_type == "multipart/report" or bool(_BOUNCE_SENDER_RE.search(inner_from))


def _excluded_addresses(mail: _Mail) -> set[str]:
    """Addresses in a bounce that belong to its sender side, never to a failed recipient."""
    headers = [mail.message.get(h) for h in ("From", "To", "Return-Path", "Reply-To", "Sender")]
    if mail.original is not None:
        headers += [mail.original.get(h) for h in ("From", "Return-Path", "Sender", "Reply-To")]
    excluded: set[str] = set()
    for value in headers:
        for address in addresses_in(decode_header_value(value)):
            excluded.add(address.lower())
    return excluded


def _text_recipients(mail: _Mail, report: str) -> list[TextRecipient]:
    excluded = _excluded_addresses(mail)
    found = find_recipients(report, excluded)
    failed_header = decode_header_value(mail.message.get("X-Failed-Recipients"))
    listed = addresses_in(failed_header)
    if listed:
        by_key = {t.recipient.lower(): t for t in found}
        return [by_key.get(a.lower(), TextRecipient(a, report)) for a in listed]
    if not found:
        # Some bounces name the recipient only in the returned original's To header.
        fallback = None
        if mail.original is not None:
            fallback = first_address(decode_header_value(mail.original.get("To")))
        if fallback and fallback.lower() not in excluded:
            return [TextRecipient(fallback, report)]
    return found


def _diagnostic_excerpt(block: str) -> str:
    lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
    with_code = [ln for ln in lines if _CODE_LINE_RE.search(ln)]
    chosen = with_code or lines
    return " ".join(" ".join(chosen).split())[:_MAX_DIAGNOSTIC]


def _command_in(text: str) -> str | None:
    """Return the SMTP command a bounce says was refused ("RCPT", "MAIL", "DATA", ...)."""
    last_sent: str | None = None
    for line in text.split("\n"):
        sent = _TRANSCRIPT_SENT_RE.match(line)
        if sent:
            last_sent = sent.group(1)
        elif last_sent and _TRANSCRIPT_REPLY_RE.match(line):
            return _normalise_command(last_sent)
    for pattern in _COMMAND_PATTERNS:
        m = pattern.search(text)
        if m:
            return _normalise_command(m.group(1))
    return None


def _normalise_command(word: str) -> str:
    word = " ".join(word.upper().split())
    if word.startswith("RCPT") or word == "RECIPIENT":
        return "RCPT"
    if word.startswith("MAIL") or word == "SENDER":
        return "MAIL"
    if word in ("DATA", "END OF DATA", "TEXT"):
        return "DATA"
    if word.startswith("CONNECT") or word == "GREETING":
        return "CONNECT"
    return word


def _text_verdicts(mail: _Mail, report: str) -> list[Verdict]:
    recipients = _text_recipients(mail, report)
    verdicts: list[Verdict] = []
    for item in recipients:
        block = item.block
        context = f"{block}\n{report}"
        status = find_enhanced_status(block) or find_enhanced_status(report)
        code = find_reply_code(block) or find_reply_code(report)
        command = _command_in(block) or _command_in(report)
        delayed = _is_delay_notice(status, code, context)
        reason = decide_reason(
            status=status,
            code=code,
            text=block,
            command=command,
            fallback_texts=(report, mail.subject),
            final=not delayed,
        )
        reason = apply_carrier_rules(
            reason, code, context, item.recipient, status=status, command=command
        )
        reason = _group_rules(reason, item.recipient, status)
        reason = _on_hold_if_unread(reason, block, item.recipient)
        verdicts.append(
            make_verdict(
                recipient=item.recipient,
                reply_code=code,
                status=status,
                diagnostic=_diagnostic_excerpt(block if block.strip() else report),
                reason=reason,
                action="delayed" if delayed else "failed",
                source="nonstandard",
            )
        )
    return verdicts


def _group_rules(reason: str, recipient: str | None, status: str | None) -> str:
    """A Google Groups address refuses posts from non-members: the sender is refused.

    Only when the bounce carries no status of its own; a group that does not exist at all
    comes back as an ordinary 5.1.1.
    """
    if (
        status is None
        and recipient
        and recipient.lower().endswith("@googlegroups.com")
        and allowed("provider:googlegroups:non-member")
    ):
        return r.REJECTED
    return reason


_WORD_RE: Final = re.compile(r"[^\W\d_]{2,}")


def _on_hold_if_unread(reason: str, diagnostic: str, recipient: str | None) -> str:
    """An unreadable failure that still came with an explanation is on hold for a person.

    Like Sisimai, ``undefined`` is kept for a failure that says nothing at all, and ``onhold``
    marks one whose wording the rules could not read; both stay soft and unclassified.
    """
    if reason != r.UNDEFINED:
        return reason
    text = diagnostic.replace(recipient, " ") if recipient else diagnostic
    return r.ON_HOLD if _WORD_RE.search(text) else reason


def _is_delay_notice(status: str | None, code: int | None, text: str) -> bool:
    if not is_temporary(status, code):
        return False
    return bool(_DELAY_RE.search(text))


def _dsn_verdicts(mail: _Mail, report: str) -> list[Verdict]:
    entries: list[DsnRecipient] = []
    for part in mail.dsn_parts:
        entries.extend(read_recipients(delivery_status_text(part)))
    if not entries:
        entries = read_recipients(mail.body)
    human = find_recipients(report, _excluded_addresses(mail)) if report else []
    human_blocks = {t.recipient.lower(): t.block for t in human}
    failed_listed = addresses_in(decode_header_value(mail.message.get("X-Failed-Recipients")))
    verdicts: list[Verdict] = []
    for position, entry in enumerate(entries):
        recipient = entry.recipient
        if recipient is None:
            # Final-Recipient is sometimes a file or program ("save to /var/mail/..."); the
            # address is then in X-Failed-Recipients or the human-readable part.
            if position < len(failed_listed):
                recipient = failed_listed[position]
            elif len(entries) == 1 and human:
                recipient = human[0].recipient
        diagnostic = entry.diagnostic
        status = entry.status
        in_diagnostic = find_specific_status(diagnostic)
        if (
            in_diagnostic
            and (status is None or is_generic(status) or status == "4.4.7")
            and not is_generic(in_diagnostic)
        ):
            # RFC 3463: detail 0 means "other", and 4.4.7 only that the queue time ran out; the
            # remote server's own specific status in the diagnostic says why.
            status = in_diagnostic
        elif in_diagnostic and status is None:
            status = in_diagnostic
        code = find_reply_code(diagnostic)
        key = (recipient or "").lower()
        extra = human_blocks.get(key) or (report if len(entries) == 1 else "")
        text = f"{diagnostic}\n{extra}"
        if code is None:
            code = find_reply_code(extra)
        if status is None:
            status = find_enhanced_status(extra)
        if entry.action in ("delivered", "relayed", "expanded") and (
            status is None or status.startswith("2")
        ):
            reason = r.DELIVERED
        else:
            reason = decide_reason(
                status=status,
                code=code,
                text=diagnostic,
                command=_command_in(text),
                fallback_texts=(extra, mail.subject),
                final=entry.action not in ("delayed", "relayed", "delivered", "expanded"),
            )
            if entry.action == "delayed" and (
                status in QUEUE_TIMEOUTS
                or (reason_from_status(status) is None and reason == r.UNDEFINED)
            ):
                # A delay notice about the network (no answer, bad connection, time running
                # out) or about nothing named: the message is expiring in the sender's queue.
                reason = r.EXPIRED
        reason = apply_carrier_rules(
            reason, code, text, recipient, status=status, command=_command_in(text)
        )
        reason = _group_rules(reason, recipient, status)
        reason = _on_hold_if_unread(reason, diagnostic, recipient)
        verdicts.append(
            make_verdict(
                recipient=recipient,
                reply_code=code,
                status=status,
                diagnostic=(diagnostic or _diagnostic_excerpt(text))[:_MAX_DIAGNOSTIC],
                reason=reason,
                action=entry.action,
                source="dsn",
            )
        )
    return verdicts


def _feedback_verdicts(mail: _Mail, jmrp: str | None) -> list[Verdict]:
    texts = [feedback_text(part) for part in mail.feedback_parts]
    fields: dict[str, str] = {}
    for text in texts:
        fields.update(fields_in_text(text))
    if not fields:
        texts = [mail.body]
        fields = fields_in_text(mail.body)
    if is_unsubscribe_request(mail.message):
        fields.setdefault("feedback-type", "unsubscribe")
    # One verdict per reported recipient, in order (RFC 5965 repeats Original-Rcpt-To).
    recipients: list[str | None] = [jmrp] if jmrp else []
    if not recipients:
        recipients.extend(feedback_recipients("\n".join(texts), mail.original))
    if not recipients and is_unsubscribe_request(mail.message):
        # Apple Mail sends the request from the subscriber's own address.
        recipients.append(first_address(decode_header_value(mail.message.get("From"))))
    # A complaint whose recipient is redacted still counts: the engine matches it to the
    # delivery by Message-ID, so the verdict is kept with recipient None.
    return [
        make_verdict(
            recipient=recipient,
            reply_code=None,
            status=None,
            diagnostic=f"feedback-type: {fields.get('feedback-type', 'unknown')}",
            reason=r.FEEDBACK,
            action=None,
            source="arf",
        )
        for recipient in recipients or [None]
    ]


def _autoreply_verdicts(mail: _Mail) -> list[Verdict]:
    sender = first_address(decode_header_value(mail.message.get("From")))
    if sender is None:
        return []
    return [
        make_verdict(
            recipient=sender,
            reply_code=None,
            status=None,
            diagnostic=mail.subject[:_MAX_DIAGNOSTIC],
            reason=r.VACATION,
            action=None,
            source="autoreply",
        )
    ]
