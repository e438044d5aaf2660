"""The outcome stage: what an attempt means for its delivery, handed on to the recorder; and
the ``Feedback`` the shaper hears.

The stages before it (the runner's routing, the lanes) hand it what happened: a reply, a
routing error, an expiry. It decides the ``AttemptResult`` (a reply is classified with
``engine.bounce``, a deferral gets its next attempt time from ``engine.queue.retry`` or, past
``max_age``, becomes ``failed``/``expired``) and hands that to the next stage, the recorder,
which writes it. The decisions are pure; nothing here waits or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol

from engine.bounce import category_for_reason, classify_reply
from engine.delivery._transport import SendResult
from engine.platform.clock import jst_text
from engine.platform.config import QueueSettings
from engine.queue import AttemptResult, ClaimedDelivery, Outcome
from engine.queue.retry import next_attempt
from engine.throttle import Feedback
from engine.throttle import Outcome as FeedbackOutcome

EXPIRED_TEXT = "not delivered within the maximum age"
HELD_TEXT_JA = (
    "受信側が送信元アドレスを一時的に受け付けていないため待機中 (宛先の問題ではありません)"
)
HELD_TEXT = (
    "held, not sent: the receiving site refuses our sending addresses for now; this recipient "
    "is not at fault"
)

P = ParamSpec("P")


class Record(Protocol):
    """The next stage: the recorder (``engine.delivery._recorder.Recorder``)."""

    def add(self, result: AttemptResult) -> None:
        """The delivery's outcome: it is settled and written."""

    def note(self, result: AttemptResult) -> None:
        """An attempt the operator sees while the delivery stays held (back in its lane)."""


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


def _recorded(
    decide: Callable[Concatenate[Outcomes, P], AttemptResult],
) -> Callable[Concatenate[Outcomes, P], None]:
    """The decision ``decide`` makes, handed to the recorder as the delivery's outcome."""

    def hand_on(self: Outcomes, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self.record.add(decide(self, *args, **kwargs))

    hand_on.__name__, hand_on.__doc__ = decide.__name__, decide.__doc__
    return hand_on


class Outcomes:
    """Decides each delivery's result under the queue's retry settings and hands it to
    ``record``."""

    def __init__(self, queue: QueueSettings, record: Record) -> None:
        self._q = queue
        self.record = record

    def sent(self, d: ClaimedDelivery, r: SendResult, now: datetime) -> None:
        """One SMTP attempt (or connection attempt) for ``d``: its outcome."""
        self.record.add(self._of_send(d, r, now))

    def noted(self, d: ClaimedDelivery, r: SendResult, now: datetime) -> None:
        """An attempt that does not settle ``d`` (it goes round again): shown, not counted."""
        self.record.note(self._of_send(d, r, now))

    def _of_send(self, d: ClaimedDelivery, r: SendResult, now: datetime) -> AttemptResult:
        """The result of one SMTP attempt (or connection attempt) for ``d``."""
        if r.outcome is Outcome.DELIVERED:
            return AttemptResult(d.id, r.outcome, now, r.code, r.status, r.text, r.host,
                                 tls=r.tls)
        verdict = classify_reply(r.code, r.status, r.text, r.command, d.recipient, d.domain)
        if r.outcome is Outcome.DEFERRED:
            return replace(self._temporary(
                d, now, r.code, r.status, r.text, r.host, verdict.reason, verdict.category
            ), tls=r.tls)
        return AttemptResult(
            d.id, r.outcome, now, r.code, r.status, r.text, r.host, verdict.reason,
            category=verdict.category, tls=r.tls,
        )

    def _temporary(
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

    @_recorded
    def held_for_block(
        self, d: ClaimedDelivery, r: SendResult | None, now: datetime, until: datetime
    ) -> AttemptResult:
        """The site blocked every egress address that could carry ``d``: back to the queue
        until the shaper's next probe (or its maximum age), without counting an attempt —
        never a failure of the recipient. ``r``: the block's reply when it answered ``d``
        itself; a delivery that was only waiting in the lane gets a note saying why it waits
        (reason ``onhold``), never another recipient's reply."""
        next_at = min(until, d.expires_at)
        if r is not None:
            return AttemptResult(
                d.id, Outcome.DEFERRED, now, r.code, r.status, r.text, r.host, "blocked",
                next_attempt_at=next_at, counts=False, category=category_for_reason("blocked"),
            )
        return AttemptResult(
            d.id, Outcome.DEFERRED, now, None, None,
            f"{HELD_TEXT_JA} ({jst_text(next_at, seconds=False)} 以降に再送) / {HELD_TEXT}",
            None, "onhold", next_attempt_at=next_at, counts=False,
            category=category_for_reason("onhold"),
        )

    @_recorded
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

    @_recorded
    def routing_failed(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The domain does not exist or accepts no mail (null MX): final."""
        return AttemptResult(
            d.id, Outcome.FAILED, now, None, None, text, None, "hostunknown",
            category=category_for_reason("hostunknown"),
        )

    @_recorded
    def routing_deferred(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The domain could not be resolved now (resolver trouble): try again later."""
        return self._temporary(
            d, now, None, None, text, None, "networkerror", category_for_reason("networkerror")
        )

    @_recorded
    def resolver_fault(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """NXDOMAIN for a domain known to take mail: the resolver is wrong, not the address."""
        return self._temporary(
            d, now, None, None,
            f"{text}; the domain is known to take mail, so the resolver is at fault "
            "(DNSの不具合の可能性: 宛先の誤りではありません), retrying",
            None, "networkerror", category_for_reason("networkerror"),
        )

    @_recorded
    def held_unsigned(self, d: ClaimedDelivery, now: datetime, text: str) -> AttemptResult:
        """The sender's domain has no DKIM key and unsigned mail is not allowed: deferred
        until the operator adds the key (or allows unsigned mail), never sent unsigned."""
        return self._temporary(
            d, now, None, None, f"{text} (DKIM 鍵がないため保留 / held: no DKIM key)", None,
            "securityerror", category_for_reason("securityerror"),
        )

    @_recorded
    def tls_unavailable(
        self, d: ClaimedDelivery, r: SendResult, now: datetime
    ) -> AttemptResult:
        """TLS is required for ``d``'s site or MX host and none of its servers gave it: an
        attempt that counts, retried later, never sent in plain text; not the address's
        fault (reason ``failedstarttls``, a soft category)."""
        return replace(self._temporary(
            d, now, r.code, r.status, r.text, r.host, "failedstarttls",
            category_for_reason("failedstarttls"),
        ), tls=False)

    @_recorded
    def internal_error(
        self, d: ClaimedDelivery, now: datetime, exc: BaseException
    ) -> AttemptResult:
        return self._temporary(
            d, now, None, None, f"internal error: {type(exc).__name__}: {exc}", None,
            "systemerror", category_for_reason("systemerror"),
        )
