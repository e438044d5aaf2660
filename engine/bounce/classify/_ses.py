"""Read Amazon SES bounce, complaint and delivery notifications delivered as JSON by mail.

SES (directly, or wrapped in an SNS notification) reports bounces as a JSON document instead of
an RFC 3464 report; its fields map one to one onto a DSN's.
"""

from __future__ import annotations

import json
from typing import Final

from engine.bounce.classify import reasons as r
from engine.bounce.classify._diagnosis import decide_reason, find_enhanced_status, find_reply_code
from engine.bounce.classify._mime import first_address
from engine.bounce.classify._verdict import Verdict, make_verdict

MAX_DIAGNOSTIC: Final = 1000


def json_notification(body: str) -> list[Verdict] | None:
    """Read an Amazon SES bounce/complaint notification delivered as JSON (directly or via SNS)."""
    if "notificationType" not in body and "eventType" not in body:
        return None
    start = body.find("{")
    end = body.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        # strict=False: mail transport folds long lines, leaving raw newlines inside strings.
        data = json.loads(body[start : end + 1], strict=False)
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"], strict=False)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    verdicts: list[Verdict] = []
    if kind == "bounce":
        bounce = data.get("bounce") or {}
        for item in bounce.get("bouncedRecipients") or []:
            diagnostic = str(item.get("diagnosticCode") or "")
            status = item.get("status") or find_enhanced_status(diagnostic)
            code = find_reply_code(diagnostic)
            reason = decide_reason(status=status, code=code, text=diagnostic, final=True)
            verdicts.append(
                make_verdict(
                    recipient=first_address(str(item.get("emailAddress", ""))),
                    reply_code=code,
                    status=status,
                    diagnostic=diagnostic[:MAX_DIAGNOSTIC],
                    reason=reason,
                    action=str(item.get("action") or "failed"),
                    source="dsn",
                )
            )
    elif kind == "complaint":
        complaint = data.get("complaint") or {}
        for item in complaint.get("complainedRecipients") or []:
            verdicts.append(
                make_verdict(
                    recipient=first_address(str(item.get("emailAddress", ""))),
                    reply_code=None,
                    status=None,
                    diagnostic=str(complaint.get("complaintFeedbackType") or "complaint"),
                    reason=r.FEEDBACK,
                    action=None,
                    source="arf",
                )
            )
    elif kind == "delivery":
        delivery = data.get("delivery") or {}
        for address in delivery.get("recipients") or []:
            text = str(delivery.get("smtpResponse") or "")
            verdicts.append(
                make_verdict(
                    recipient=first_address(str(address)),
                    reply_code=find_reply_code(text),
                    status="2.6.0",
                    diagnostic=text[:MAX_DIAGNOSTIC],
                    reason=r.DELIVERED,
                    action="delivered",
                    source="dsn",
                )
            )
    else:
        return None
    return verdicts
