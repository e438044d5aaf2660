"""The live state of one (egress address, site), and what a judged reply does to it.

A `Pair` holds the adaptive controller (`aimd.py`), the token bucket, the connections in use,
the block state (`blocks.py`), the learned per-session cap and the counters. `take_reply`
applies one reply, already judged by the site's reply history (`congestion.py`), and says what
the runner should do with the delivery. `SiteState` is its snapshot for operators.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

from engine.platform.clock import Clock
from engine.throttle._aimd import AimdSettings, Learned, RateController
from engine.throttle._blocks import BlockSettings, BlockState
from engine.throttle._bucket import TokenBucket
from engine.throttle._congestion import Kind, Verdict
from engine.throttle._feedback import Feedback, Outcome, Signal
from engine.throttle.profiles import Profile


@dataclass(frozen=True, slots=True)
class SiteState:
    """A snapshot of one (source, site) pair, for `mamoru shaping status` and metrics."""

    source: str
    site: str
    profile: str
    rate: float
    floor: float
    ceiling: float
    connections_in_use: int
    connections_allowed: int
    max_connections: int
    suspended_until: datetime | None
    suspensions: int
    cuts: int
    sent: int
    delivered: int
    deferred: int
    throttled: int
    refused: int
    failed: int
    waiting: int
    warmup_sent_today: int
    warmup_limit_today: int | None
    blocked_until: datetime | None = None  # while blocked: when the next probe may go
    blocked_since: datetime | None = None  # while blocked: when this run of blocks began
    blocks: int = 0
    block_reason: str = ""
    trouble_rate: float | None = None
    session_cap: int | None = None


class Pair:
    """Live state of one (source, site): controller, bucket, connections, counters."""

    def __init__(
        self,
        clock: Clock,
        profile: Profile,
        settings: AimdSettings,
        burst_seconds: float,
        block_settings: BlockSettings,
    ) -> None:
        self.profile = profile
        self.block = BlockState(block_settings)
        # How many messages sessions had carried when the site ended them: the same count
        # twice is a per-connection limit, whatever the reply said.
        self.session_ends: Counter[int] = Counter()
        self.longest_session = 0  # most messages a session of this pair carried
        self.controller = RateController(
            settings,
            ceiling=profile.max_rate,
            initial_rate=profile.initial_rate,
            max_connections=profile.max_connections,
            suspend_seconds=profile.suspend_seconds,
        )
        self._burst_seconds = burst_seconds
        self.bucket = TokenBucket(clock, self.controller.rate, self._burst())
        self.in_use = 0
        self.sent = 0
        # Messages per session the site allows, once learned from its replies.
        self.session_cap: int | None = None
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    def _burst(self) -> float:
        return max(1.0, self.controller.rate * self._burst_seconds)

    def sync_bucket(self) -> None:
        if self.bucket.rate != self.controller.rate:
            self.bucket.set_rate(self.controller.rate, self._burst())

    @property
    def allowed(self) -> int:
        return min(self.profile.max_connections, self.controller.allowed_connections)

    def learned(self) -> Learned | None:
        learned = replace(self.controller.learned(), session_cap=self.session_cap)
        if learned.trouble_rate is None and learned.trouble_connections is None and (
            learned.session_cap is None
        ):
            return None
        return learned

    def restore(self, learned: Learned) -> None:
        self.controller.restore(learned)
        if learned.session_cap is not None:
            self.session_cap = max(1, learned.session_cap)
        self.sync_bucket()

    def take_reply(
        self, kind: Kind, hint: Signal, feedback: Feedback, now: float, token_at: float,
        probe: bool, *, ambiguous: bool = False,
    ) -> Verdict:
        """Apply one judged reply to the controller and the block state."""
        if hint is Signal.SUSPEND:
            self.controller.on_signal(Signal.SUSPEND, now, token_at)
            return Verdict.CONGESTION
        if self.block.blocked and kind not in (Kind.SUCCESS, Kind.RECIPIENT):
            kind = Kind.BLOCK  # a refused probe, or replies still arriving after the block
        if kind is Kind.BLOCK:
            if self.block.block(now, block_reason(feedback)):
                self.controller.on_block(now)
                self.sync_bucket()
            return Verdict.BLOCK
        if probe and self.block.blocked:
            # The site talks normally again (it took the mail or spoke about the recipient).
            self.block.resume()
        signal = _SIGNALS[kind]
        if kind in (Kind.CONNECTION, Kind.CONGESTION) and hint is Signal.CONNECTION_LIMIT:
            signal = Signal.CONNECTION_LIMIT
        elif signal is Signal.CONNECTION_SLOW_DOWN and self.in_use > 1:
            # A connection refused while others to the same site work: most likely the
            # site's limit on connections, not on the message rate.
            signal = Signal.CONNECTION_LIMIT
        cuts = self.controller.cuts
        if ambiguous and signal is Signal.SLOW_DOWN and self.controller.cuts == 0:
            # The first session ended in slow start says little about the rate: no line yet.
            self.controller.on_ambiguous_slow_down(now, token_at)
        else:
            self.controller.on_signal(signal, now, token_at)
        if self.controller.cuts > cuts:
            # The site's own budget is spent: messages sent from our saved-up tokens now would
            # each be one more violation, and carriers block after a number of them.
            self.bucket.drain()
        if signal is Signal.CONNECTION_LIMIT:
            # The connections open besides this grant's are what the site accepted.
            self.controller.cap_connections(self.in_use - 1, now)
        self.sync_bucket()
        return _VERDICTS[kind]


_SIGNALS = {
    Kind.SUCCESS: Signal.SUCCESS,
    Kind.RECIPIENT: Signal.NEUTRAL,
    Kind.UNSURE: Signal.NEUTRAL,
    Kind.CONGESTION: Signal.SLOW_DOWN,
    Kind.CONNECTION: Signal.CONNECTION_SLOW_DOWN,
}
_VERDICTS = {
    Kind.SUCCESS: Verdict.RECORD,
    Kind.RECIPIENT: Verdict.RECORD,
    Kind.UNSURE: Verdict.UNSURE,
    Kind.CONGESTION: Verdict.CONGESTION,
    Kind.CONNECTION: Verdict.CONGESTION,
}
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


def block_reason(feedback: Feedback) -> str:
    """The reply that showed a block, for operators: without any address, at most 200
    characters."""
    code = "" if feedback.code is None else f"{feedback.code} "
    status = f"{feedback.status} " if feedback.status else ""
    text = _ADDRESS.sub("<...>", feedback.text or "connection refused or reset")
    return f"{code}{status}{text}"[:200]
