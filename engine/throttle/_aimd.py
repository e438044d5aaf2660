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
- Stay under the line instead of finding it by hitting it: the rate at which the site last
  pushed back (`trouble_rate`) and the connection count it refused (`trouble_connections`) are
  remembered — also across restarts, as `Learned` values the runner stores. Below
  `approach` x trouble_rate the rate climbs quickly; above it only creeps (`creep_fraction` of
  the trouble rate per step) until `beyond` x trouble_rate, so a site is met at its line
  about once a minute instead of every few seconds, and a cut near the known line is gentle.
  Connections climb back to one fewer than the refused count, and try that count again only
  after `connection_hold_seconds`.
- After a block the trouble rate is lowered (`block_decrease`) and sending resumes from
  `resume_fraction` of it in slow start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engine.throttle._feedback import Signal


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
    # Near the rate that drew pushback last time: creep, and cut gently.
    approach: float = 0.9
    creep_fraction: float = 0.002
    beyond: float = 1.05  # past this multiple of the trouble rate, climb normally again
    near_decrease: float = 0.85
    connection_hold_seconds: float = 300.0
    block_decrease: float = 0.8
    resume_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not (0 < self.floor and 0 < self.decrease < 1 and self.suspend_after >= 1):
            raise ValueError(f"invalid AIMD settings: {self}")


@dataclass(frozen=True, slots=True)
class Learned:
    """What one (egress address, site) taught the controller, as plain values to store."""

    rate: float
    trouble_rate: float | None = None
    trouble_connections: int | None = None
    session_cap: int | None = None


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
        self._last_cut_hard = False
        # The rate at which the site last pushed back, and the connection count it refused.
        self.trouble_rate: float | None = None
        self.trouble_connections: int | None = None
        self._connection_trouble_at = float("-inf")

    def learned(self) -> Learned:
        return Learned(self.rate, self.trouble_rate, self.trouble_connections)

    def restore(self, learned: Learned) -> None:
        """Start from what an earlier run learned: under its trouble levels, not at them."""
        s = self.settings
        if learned.trouble_rate is not None:
            self.trouble_rate = min(learned.trouble_rate, self.ceiling)
            self._rate_at_last_cut = self.trouble_rate
            self.rate = max(self.floor, min(self.rate, self.trouble_rate * s.approach))
        if learned.trouble_connections is not None:
            self.trouble_connections = max(1, learned.trouble_connections)
            self.allowed_connections = max(
                1, min(self.allowed_connections, self.trouble_connections - 1)
            )

    def on_block(self, now: float) -> None:
        """The site blocked this pair: the rate it had was too much; resume far below it."""
        s = self.settings
        seen = max(self.rate, self._rate_at_last_cut)
        trouble = seen if self.trouble_rate is None else min(self.trouble_rate, seen)
        self.trouble_rate = max(self.floor, trouble * s.block_decrease)
        self._rate_at_last_cut = self.trouble_rate
        self.rate = max(self.floor, self.trouble_rate * s.resume_fraction)
        self.allowed_connections = 1
        self._last_connection_step = now
        self.cuts = 0  # slow start again, capped under the trouble rate
        self._recent_cuts.clear()
        self._last_increase = None
        self._last_cut = now

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
                    self._note_connection_trouble(self.allowed_connections, now)
                    self.allowed_connections = max(1, self.allowed_connections - 1)
                    self._last_connection_step = now
            case Signal.SUSPEND:
                self.suspend(now)
            case Signal.NEUTRAL:
                pass

    def cap_connections(self, accepted: int, now: float) -> None:
        """The site took ``accepted`` connections and refused one more: allow no more than
        that (at least one) until successes earn more back."""
        self._note_connection_trouble(accepted + 1, now)
        self.allowed_connections = max(1, min(self.allowed_connections, accepted))
        self._last_connection_step = now

    def _note_connection_trouble(self, refused_at: int, now: float) -> None:
        self.trouble_connections = max(1, refused_at)
        self._connection_trouble_at = now

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

    def on_ambiguous_slow_down(self, now: float, sent_at: float | None = None) -> None:
        """A "slow down" that may be something else (a session ended early: too fast, or a
        per-session limit not yet learned). Cut gently and leave the remembered line alone:
        a line drawn at the slow-start rate of the first seconds would hold the pair far
        under the site's limit for a minute. (The shaper uses it for the first cut only.)"""
        line, cut_at = self.trouble_rate, self._rate_at_last_cut
        if self._on_slow_down(now, sent_at, factor=self.settings.decrease):
            self.trouble_rate, self._rate_at_last_cut = line, cut_at

    def _on_slow_down(
        self, now: float, sent_at: float | None, factor: float | None = None
    ) -> bool:
        # While suspended, late replies from connections opened before are the same overload;
        # so is a reply to a message sent before the last cut, at the old rate.
        if (
            self.is_suspended(now)
            or now - self._last_cut < self.settings.cut_interval
            or (sent_at is not None and sent_at < self._last_cut)
        ):
            return False
        s = self.settings
        # Halve on the first cut and when cuts follow each other quickly: the rate is far above
        # the site's limit. Once near it, cut gently, so the sawtooth stays close to the limit;
        # near a line the site drew before, more gently still.
        quick = now - self._last_cut < s.hard_cut_window
        near = self.trouble_rate is not None and self.rate >= self.trouble_rate * s.approach
        # Under a known line a quick cut after a gentle one is a late echo of it, not a sign
        # of being far above the limit: halve only after a hard cut or with no line known.
        known = self.trouble_rate is not None and self.rate <= self.trouble_rate * s.beyond
        still_far = quick and (not known or self._last_cut_hard)
        if factor is not None:
            pass
        elif still_far or (self.cuts == 0 and not near):
            factor = s.hard_decrease
        elif near:
            factor = s.near_decrease
        else:
            factor = s.decrease
        self._last_cut = now
        self.cuts += 1
        self._rate_at_last_cut = self.rate
        self._last_cut_hard = factor == s.hard_decrease
        if (
            self.trouble_rate is None
            or self.rate >= self.trouble_rate * s.approach
            or still_far
        ):
            self.trouble_rate = self.rate
        else:
            # Well below the line: perhaps not the rate at all (a session limit read as "too
            # fast"); one such cut lowers the line a little, several lower it further.
            self.trouble_rate = max(self.rate, self.trouble_rate * s.approach)
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
            self.rate = min(self.ceiling, self._under_the_line(step))
            self._last_increase = now
        if self.allowed_connections < self._connection_cap(now):
            if self._last_connection_step is None:
                self._last_connection_step = now
            elif now - self._last_connection_step >= self.settings.connection_step_seconds:
                self.allowed_connections += 1
                self._last_connection_step = now

    def _under_the_line(self, step: float) -> float:
        """The rate after one step up: quick up to `approach` x the trouble rate, then a
        creep, so the line the site drew is approached slowly, not run into."""
        trouble = self.trouble_rate
        if trouble is None:
            return self.rate + step
        near = trouble * self.settings.approach
        if self.rate < near:
            return min(near, self.rate + step)
        if self.rate < trouble * self.settings.beyond:
            return self.rate + trouble * self.settings.creep_fraction
        return self.rate + step  # past the old line without pushback: the line has moved

    def _connection_cap(self, now: float) -> int:
        """How many connections successes may earn back: one fewer than the count the site
        refused, until that refusal is `connection_hold_seconds` old."""
        trouble = self.trouble_connections
        if trouble is None:
            return self.max_connections
        if now - self._connection_trouble_at < self.settings.connection_hold_seconds:
            return max(1, min(self.max_connections, trouble - 1))
        return min(self.max_connections, trouble)
