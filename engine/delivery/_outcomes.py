"""What an attempt means for its delivery: the ``AttemptResult`` to record, and the
``Feedback`` the shaper hears.

Pure decisions, no I/O: a reply is classified (``engine/bounce``), a deferral gets its next
attempt time (``engine/queue/retry``) or, past ``max_age``, becomes ``failed``/``expired``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from engine.bounce import category_for_reason, classify_reply
from engine.delivery._transport import SendResult
from engine.platform.config import QueueSettings
from engine.queue import AttemptResult, ClaimedDelivery, Outcome
from engine.queue.retry import next_attempt
from engine.throttle import Feedback
from engine.throttle import Outcome as FeedbackOutcome

EXPIRED_TEXT = "not delivered within the maximum age"


def feedback_of(result: SendResult, recipient: str = "") -> Feedback:
    """What an attempt's result tells the shaper about the site's capacity: the outcome, the
    reply, the SMTP step that answered and, past the greeting, the recipient (so the shaper
    can tell one recipient's trouble from the site's)."""
    if result.code is None:
        kind = FeedbackOutcome.REFUSED
    elif result.outcome is Outcome.DELIVERED:
        kind = FeedbackOutcome.DELIVERED
    elif result.code == 421:
        kind = FeedbackOutcome.THROTTLED
    elif result.outcome is Outcome.DEFERRED:
        kind = FeedbackOutcome.DEFERRED
    else:
        kind = FeedbackOutcome.FAILED
    return Feedback(
        kind, result.code, result.text, result.status, result.command,
        "" if result.command == "CONNECT" else recipient,
    )


class Outcomes:
    """Builds the results the runner records, under the queue's retry settings."""

    def __init__(self, queue: QueueSettings) -> None:
        self._q = queue

    def of_send(self, d: ClaimedDelivery, r: SendResult, now: datetime) -> AttemptResult:
        """The result of one SMTP attempt (or connection attempt) for ``d``."""
        if r.outcome is Outcome.DELIVERED:
            return AttemptResult(d.id, r.outcome, now, r.code, r.status, r.text, r.host,
                                 tls=r.tls)
        verdict = classify_reply(r.code, r.status, r.text, r.command, d.recipient, d.domain)
        if r.outcome is Outcome.DEFERRED:
            return replace(self.temporary(
                d, now, r.code, r.status, r.text, r.host, verdict.reason, verdict.category
            ), tls=r.tls)
        return AttemptResult(
            d.id, r.outcome, now, r.code, r.status, r.text, r.host, verdict.reason,
            category=verdict.category, tls=r.tls,
        )

    def temporary(
        self,
        d: ClaimedDelivery,
        now: datetime,
        code: int | None,
        status: str | None,
        text: str,
        host: str | None,
        reason: str | None = None,
        category: str | None = None,
    ) -> AttemptResult:
        """A deferral, due again after the back-off; ``failed``/``expired`` when that would
        fall past the delivery's maximum age."""
        q = self._q
        when = next_attempt(now, d.attempts + 1, q.retry_base, q.retry_max, d.expires_at)
        if when is None:
            return AttemptResult(
                d.id, Outcome.FAILED, now, code, status, text, host, "expired",
                category=category_for_reason("expired"),
            )
        return AttemptResult(
            d.id, Outcome.DEFERRED, now, code, status, text, host, reason,
            next_attempt_at=when, category=category,
        )

    def held_for_block(
        self, d: ClaimedDelivery, r: SendResult, now: datetime, until: datetime
    ) -> AttemptResult:
        """The site blocked every egress address that could carry ``d``: back to the queue
        until the shaper's next probe (or its maximum age), without counting an attempt and
        with the block's reply for the operator — never a failure of the recipient."""
        return AttemptResult(
            d.id, Outcome.DEFERRED, now, r.code, r.status, r.text, r.host, "blocked",
            next_attempt_at=min(until, d.expires_at), counts=False,
            category=category_for_reason("blocked"),
        )

    def expired(
        self, d: ClaimedDelivery, now: datetime, last: AttemptResult | None = None
    ) -> AttemptResult:
        """``d`` reached its maximum age before it could be sent (again); ``last`` is the
        latest attempt noted since it was claimed, if any."""
        code, status, text = d.last_code, d.last_status, d.last_text
        if last is not None:
            code, status, text = last.code, last.status, last.text
        full = f"{EXPIRED_TEXT}; last reply: {text}" if text else EXPIRED_TEXT
        return AttemptResult(
            d.id, Outcome.FAILED, now, code, status, full, None,
            "expired", counts=False, category=category_for_reason("expired"),
        )

    def routing_failed(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The domain does not exist or accepts no mail (null MX): final."""
        return AttemptResult(
            d.id, Outcome.FAILED, now, None, None, text, None, "hostunknown",
            category=category_for_reason("hostunknown"),
        )

    def routing_deferred(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The domain could not be resolved now (resolver trouble): try again later."""
        return self.temporary(
            d, now, None, None, text, None, "networkerror", category_for_reason("networkerror")
        )

    def resolver_fault(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """NXDOMAIN for a domain known to take mail: the resolver is wrong, not the address."""
        return self.temporary(
            d, now, None, None,
            f"{text}; the domain is known to take mail, so the resolver is at fault "
            "(DNSの不具合の可能性: 宛先の誤りではありません), retrying",
            None, "networkerror", category_for_reason("networkerror"),
        )

    def held_unsigned(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The sender's domain has no DKIM key and unsigned mail is not allowed: deferred
        until the operator adds the key (or allows unsigned mail), never sent unsigned."""
        return self.temporary(
            d, now, None, None, f"{text} (DKIM 鍵がないため保留 / held: no DKIM key)", None,
            "securityerror", category_for_reason("securityerror"),
        )

    def tls_unavailable(
        self, d: ClaimedDelivery, r: SendResult, now: datetime
    ) -> AttemptResult:
        """TLS is required for ``d``'s site or MX host and none of its servers gave it: an
        attempt that counts, retried later, never sent in plain text; not the address's
        fault (reason ``failedstarttls``, a soft category)."""
        return replace(self.temporary(
            d, now, r.code, r.status, r.text, r.host, "failedstarttls",
            category_for_reason("failedstarttls"),
        ), tls=False)

    def internal_error(
        self, d: ClaimedDelivery, now: datetime, exc: BaseException
    ) -> AttemptResult:
        return self.temporary(
            d, now, None, None, f"internal error: {type(exc).__name__}: {exc}", None,
            "systemerror", category_for_reason("systemerror"),
        )
