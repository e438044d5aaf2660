"""Outcomes the runner reports to the shaper, and what each means for the pace of sending.

The throttle knows nothing of SMTP libraries: the runner turns whatever aiosmtplib raised or
answered into one small `Feedback` value, and `signal_of` decides, with the site's profile,
whether it is a plain result, a "slow down", a refused connection or an order to suspend.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from engine.throttle.profiles import Profile


class Outcome(enum.Enum):
    """What happened to one message (or one connection attempt)."""

    DELIVERED = "delivered"  # 2xx after DATA
    THROTTLED = "throttled"  # the runner already knows the reply meant "too fast"
    # The connection failed: refused, reset, closed early, timed out while opening, or greeted
    # with 421/554 instead of 220. Halves the allowed connection count as well as the rate.
    REFUSED = "refused"
    DEFERRED = "deferred"  # any other 4xx
    FAILED = "failed"  # 5xx


class Signal(enum.Enum):
    """What an outcome means for the controller of one (egress IP, site)."""

    SUCCESS = "success"
    NEUTRAL = "neutral"  # about the recipient, not about our pace (550 unknown user, greylisting)
    SLOW_DOWN = "slow_down"
    CONNECTION_SLOW_DOWN = "connection_slow_down"  # slow down and open fewer connections
    # Too many connections at once: open fewer, but the message rate was not the problem.
    CONNECTION_LIMIT = "connection_limit"
    SUSPEND = "suspend"


@dataclass(frozen=True, slots=True)
class Feedback:
    """One outcome as the runner saw it: kind, reply code (if any) and reply text; where it
    is known, the enhanced status, the SMTP step that answered (CONNECT, MAIL, RCPT, DATA) and
    the recipient (for telling one recipient's trouble from the site's)."""

    outcome: Outcome
    code: int | None = None
    text: str = ""
    status: str | None = None
    stage: str = ""
    recipient: str = ""

    @classmethod
    def delivered(cls, code: int = 250, text: str = "") -> Feedback:
        return cls(Outcome.DELIVERED, code, text)

    @classmethod
    def throttled(cls, code: int, text: str = "") -> Feedback:
        return cls(Outcome.THROTTLED, code, text)

    @classmethod
    def refused(cls, text: str = "") -> Feedback:
        return cls(Outcome.REFUSED, None, text)

    @classmethod
    def deferred(cls, code: int, text: str = "") -> Feedback:
        return cls(Outcome.DEFERRED, code, text)

    @classmethod
    def failed(cls, code: int, text: str = "") -> Feedback:
        return cls(Outcome.FAILED, code, text)


def signal_of(feedback: Feedback, profile: Profile) -> Signal:
    """Classify an outcome for the adaptive controller, using the profile's reply patterns.

    Suspend patterns win over everything (yahoo.co.jp's "VS98-IP0" comes as a 4xx and must stop
    the IP, not merely halve its rate). 421 always means "closing, come back slower". A 4xx
    counts as "slow down" only when its text matches the profile's throttle patterns, so that
    greylisting or a full mailbox does not slow a whole carrier down.
    """
    if feedback.text and profile.says_suspend(feedback.text):
        return Signal.SUSPEND
    if feedback.text and _CONNECTION_LIMIT.search(feedback.text):
        return Signal.CONNECTION_LIMIT
    match feedback.outcome:
        case Outcome.DELIVERED:
            return Signal.SUCCESS
        case Outcome.THROTTLED:
            return Signal.SLOW_DOWN
        case Outcome.REFUSED:
            return Signal.CONNECTION_SLOW_DOWN
        case Outcome.DEFERRED | Outcome.FAILED:
            if feedback.code == 421:
                return Signal.SLOW_DOWN
            code = feedback.code or 0
            if 400 <= code < 500 and profile.says_slow_down(feedback.text):
                return Signal.SLOW_DOWN
            return Signal.NEUTRAL


# Replies that name the number of connections (not the message rate) as the problem.
_CONNECTION_LIMIT = re.compile(
    r"too many (concurrent )?(connections|sessions)|connection limit|too many smtp sessions",
    re.IGNORECASE,
)
# Replies that end a session because it carried too many messages: a per-connection limit.
_SESSION_LIMIT = re.compile(
    r"too many (messages|mails|deliveries) (in|per|on) (this |one )?(session|connection)"
    r"|(session|connection) (message )?limit",
    re.IGNORECASE,
)


def is_session_limit(text: str) -> bool:
    """Whether a reply says the session carried too many messages (not: too fast)."""
    return bool(_SESSION_LIMIT.search(text))


def is_own_fault(code: int, text: str, profile: Profile) -> bool:
    """Whether a reply means the sender went too fast, not that the recipient is at fault.

    True for 421, for a 4xx whose text matches the throttle patterns, and for any reply matching
    the suspend patterns (an IP-level block says nothing about the recipient). The runner
    requeues such a delivery without counting an attempt.
    """
    if profile.says_suspend(text):
        return True
    if code == 421:
        return True
    return 400 <= code < 500 and profile.says_slow_down(text)
