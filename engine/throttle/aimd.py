"""Adaptive control of one (egress IP, site): AIMD on the rate and the connection count.

Like TCP's congestion control: every "slow down" from the carrier halves the rate at once
(multiplicative decrease), every second of successful sending adds a small step back towards the
profile's ceiling (additive increase). The carriers publish no limits (au, SoftBank), so this is
how the engine finds each one's real capacity instead of being told it.

Rules, each with its reason:
- A burst of 421s from several connections answers *one* overload: a signal about a message
  sent before the last cut is ignored (like TCP's once-per-window), and, when the send time is
  not known, at most one cut happens per `cut_interval`.
- Cuts that keep coming (`suspend_after` within `signal_window`) mean the carrier is close to
  blocking this IP: the pair is suspended for the profile's `suspend_seconds`, twice as long
  each time it happens again (capped), forgiven after `forgive_after` without a suspension.
- A reply matching the profile's suspend patterns (yahoo.co.jp's VS98-IP0) suspends at once.
- A refused or reset connection also halves the allowed connection count; one connection comes
  back per `connection_step_seconds` of success.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engine.throttle.feedback import Signal


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """Tuning of the controller, the same for every site (the profile gives floor-to-ceiling)."""

    floor: float = 0.2  # msg/s; never stop entirely because of cuts alone: suspension does that
    decrease: float = 0.7  # multiplicative cut near the limit
    hard_decrease: float = 0.5  # the first cut, and cuts within hard_cut_window of the last
    hard_cut_window: float = 2.0
    cut_interval: float = 0.5  # s; signals closer than this to the last cut are one overload
    increase_fraction: float = 0.02  # per step, of max_rate: floor to ceiling in ~50 s
    increase_interval: float = 1.0  # s of success per additive step
    # Cuts within signal_window that suspend the pair. The window is short on purpose: on a
    # carrier with a hard limit the normal sawtooth cuts every 10-20 s, and that must not
    # suspend; six cuts within 10 s mean cutting is not helping.
    suspend_after: int = 6
    signal_window: float = 10.0
    max_suspend_seconds: float = 3600.0
    forgive_after: float = 3600.0  # s without suspension before the backoff resets
    connection_step_seconds: float = 10.0
    # After a cut, climb recovery_speedup times faster until recovery_target of the rate at
    # which the cut came, then probe slowly again.
    recovery_target: float = 0.9
    recovery_speedup: float = 4.0
    # Before the first cut the rate grows by this factor per increase_interval.
    slow_start_growth: float = 1.25

    def __post_init__(self) -> None:
        if not (0 < self.floor and 0 < self.decrease < 1 and self.suspend_after >= 1):
            raise ValueError(f"invalid AIMD settings: {self}")


class RateController:
    """The adaptive state of one (egress IP, site) pair. Times are monotonic seconds."""

    def __init__(
        self,
        settings: AimdSettings,
        *,
        ceiling: float,
        initial_rate: float,
        max_connections: int,
        suspend_seconds: float,
    ) -> None:
        self.settings = settings
        self.ceiling = ceiling
        self.floor = min(settings.floor, ceiling)
        self.rate = min(max(initial_rate, self.floor), ceiling)
        self.max_connections = max_connections
        self.allowed_connections = max_connections
        self.suspend_seconds = suspend_seconds
        self.suspended_until = 0.0
        self.suspensions = 0  # in a row, for the exponential backoff
        self.total_suspensions = 0
        self.cuts = 0
        self._last_cut = float("-inf")
        self._last_increase: float | None = None
        self._last_connection_step: float | None = None
        self._last_suspension = float("-inf")
        self._recent_cuts: deque[float] = deque()
        self._last_connection_cut = float("-inf")
        self._rate_at_last_cut = 0.0

    def is_suspended(self, now: float) -> bool:
        return now < self.suspended_until

    def on_signal(self, signal: Signal, now: float, sent_at: float | None = None) -> None:
        """Apply one classified outcome; `sent_at` is when the message's token was taken."""
        match signal:
            case Signal.SUCCESS:
                self._on_success(now, sent_at)
            case Signal.SLOW_DOWN:
                self._on_slow_down(now, sent_at)
            case Signal.CONNECTION_SLOW_DOWN:
                cut = self._on_slow_down(now, sent_at)
                if cut:
                    self.allowed_connections = max(1, (self.allowed_connections + 1) // 2)
                    self._last_connection_step = now
            case Signal.CONNECTION_LIMIT:
                # One fewer than we had open when the site said "too many": the site's
                # connection limit is found without touching the message rate.
                if now - self._last_connection_cut >= self.settings.cut_interval:
                    self._last_connection_cut = now
                    self.allowed_connections = max(1, self.allowed_connections - 1)
                    self._last_connection_step = now
            case Signal.SUSPEND:
                self.suspend(now)
            case Signal.NEUTRAL:
                pass

    def cap_connections(self, accepted: int, now: float) -> None:
        """The site took ``accepted`` connections and refused one more: allow no more than
        that (at least one) until successes earn more back."""
        self.allowed_connections = max(1, min(self.allowed_connections, accepted))
        self._last_connection_step = now

    def suspend(self, now: float) -> None:
        """Stop this pair for suspend_seconds, doubled for each repeat, capped."""
        if self.is_suspended(now):
            return  # replies still arriving from connections opened before the suspension
        if now - self._last_suspension > self.settings.forgive_after:
            self.suspensions = 0
        duration = min(
            self.suspend_seconds * 2.0**self.suspensions, self.settings.max_suspend_seconds
        )
        self.suspensions += 1
        self.total_suspensions += 1
        self._last_suspension = now
        self.suspended_until = now + duration
        # Come back gently: half the rate we had, and fresh cut accounting.
        self.rate = max(self.floor, self.rate * self.settings.decrease)
        self._recent_cuts.clear()
        self._last_increase = None

    def _on_slow_down(self, now: float, sent_at: float | None) -> bool:
        # While suspended, late replies from connections opened before are the same overload;
        # so is a reply to a message sent before the last cut, at the old rate.
        if (
            self.is_suspended(now)
            or now - self._last_cut < self.settings.cut_interval
            or (sent_at is not None and sent_at < self._last_cut)
        ):
            return False
        # Halve on the first cut and when cuts follow each other quickly: the rate is far above
        # the site's limit. Once near it, cut gently, so the sawtooth stays close to the limit.
        hard = self.cuts == 0 or now - self._last_cut < self.settings.hard_cut_window
        self._last_cut = now
        self.cuts += 1
        self._rate_at_last_cut = self.rate
        factor = self.settings.hard_decrease if hard else self.settings.decrease
        self.rate = max(self.floor, self.rate * factor)
        self._last_increase = None
        window = self._recent_cuts
        window.append(now)
        while window and now - window[0] > self.settings.signal_window:
            window.popleft()
        if len(window) >= self.settings.suspend_after:
            self.suspend(now)
        return True

    def _on_success(self, now: float, sent_at: float | None) -> None:
        if now - self._last_cut < self.settings.cut_interval or (
            sent_at is not None and sent_at < self._last_cut
        ):
            return  # successes of messages sent before the cut say nothing about the new rate
        # At most one step per success: after a long idle gap the carrier's state is unknown,
        # so the rate must be earned back by sending, not by waiting.
        if self._last_increase is None:
            self._last_increase = now
        elif now - self._last_increase >= self.settings.increase_interval:
            step = self.ceiling * self.settings.increase_fraction
            # Fast recovery: back to just under the rate at which the site last said "too
            # fast" quickly, then probe above it slowly (the idea of TCP CUBIC's W_max).
            if self.rate < self._rate_at_last_cut * self.settings.recovery_target:
                step *= self.settings.recovery_speedup
            if self.cuts == 0:
                # Slow start (as TCP): until the site first says "too fast", grow by a factor,
                # not a step, so a new pair finds its pace in seconds rather than a minute.
                step = max(step, self.rate * (self.settings.slow_start_growth - 1.0))
            self.rate = min(self.ceiling, self.rate + step)
            self._last_increase = now
        if self.allowed_connections < self.max_connections:
            if self._last_connection_step is None:
                self._last_connection_step = now
            elif now - self._last_connection_step >= self.settings.connection_step_seconds:
                self.allowed_connections += 1
                self._last_connection_step = now
