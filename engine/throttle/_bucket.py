"""Token bucket: messages per second with a small burst, rate changeable while running."""

from __future__ import annotations

from engine.platform.clock import Clock


class TokenBucket:
    """Grants up to `rate` tokens per second, holding at most `burst` unused ones.

    It starts full. Changing the rate keeps the tokens already earned (capped to the new burst),
    so a cut takes effect at once and a raise does not hand out a burst of back pay.
    """

    def __init__(self, clock: Clock, rate: float, burst: float) -> None:
        self._clock = clock
        self._rate = 0.0
        self._burst = 0.0
        self._tokens = 0.0
        self._stamp = clock.monotonic()
        self.set_rate(rate, burst)
        self._tokens = self._burst

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        """Change the rate (tokens/second) and, optionally, the burst (at least 1 token)."""
        if not rate > 0:
            raise ValueError(f"a token bucket needs a positive rate, got {rate}")
        self._refill()
        self._rate = rate
        if burst is not None:
            if burst < 1:
                raise ValueError(f"a token bucket needs a burst of at least 1, got {burst}")
            self._burst = burst
        self._tokens = min(self._tokens, self._burst)

    def drain(self) -> None:
        """Drop the tokens saved up: the next one comes a full interval from now."""
        self._refill()
        self._tokens = 0.0

    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def wait_time(self, n: float = 1) -> float:
        """Seconds until `n` tokens will be available (0 if they are now); takes nothing."""
        self._check(n)
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= 1e-9 else missing / self._rate

    def try_take(self, n: float = 1) -> float:
        """Take `n` tokens and return 0, or take nothing and return the seconds to wait."""
        wait = self.wait_time(n)
        if wait == 0.0:
            self._tokens = max(0.0, self._tokens - n)
        return wait

    def _check(self, n: float) -> None:
        if n <= 0 or n > self._burst:
            raise ValueError(f"cannot take {n} tokens from a bucket with burst {self._burst}")

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
