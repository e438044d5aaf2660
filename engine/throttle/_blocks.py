"""A block of one (egress address, site): back-off, one probe mail, and resumption.

When a site refuses an address (see `congestion.py`), that address stops sending to that site
— only there, and only that address: the pool's other addresses carry its traffic. After a
back-off that grows with each block in a row (1, 2, 5, 15, 30 minutes by default) one
connection with one mail probes the site. A probe the site takes (or answers about the
recipient alone, e.g. unknown user: the site talks normally again) ends the block and sending
resumes slowly (the controller's slow start from a low rate); a probe refused again blocks for
the next, longer step. After `forgive_after` without a block the steps start over.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BACKOFF = (60.0, 120.0, 300.0, 900.0, 1800.0)


@dataclass(frozen=True, slots=True)
class BlockSettings:
    backoff: tuple[float, ...] = DEFAULT_BACKOFF  # s before each probe, step by step
    forgive_after: float = 6 * 3600.0  # s without a block before the steps start over

    def __post_init__(self) -> None:
        if not self.backoff or any(b <= 0 for b in self.backoff):
            raise ValueError(f"block back-off steps must be positive: {self.backoff}")


class BlockState:
    """Whether an (address, site) is blocked, when it may probe, and its history. Times are
    monotonic seconds."""

    def __init__(self, settings: BlockSettings | None = None) -> None:
        self.settings = settings or BlockSettings()
        self.blocked = False
        self.probe_at = 0.0
        self.probing = False  # the one probe connection is out
        self.step = 0  # blocks in a row: index into the back-off
        self.total = 0  # blocks since start, for operators and metrics
        self.reason = ""  # the reply that showed the latest block (no address in it)
        self.since = 0.0  # when this run of blocks began (failed probes keep it)
        self._last_block = float("-inf")

    def block(self, now: float, reason: str) -> bool:
        """Block (again); True when this is a new block, False for replies still arriving
        from connections opened before it."""
        if self.blocked and not self.probing:
            return False
        if now - self._last_block > self.settings.forgive_after:
            self.step = 0
        backoff = self.settings.backoff
        self.probe_at = now + backoff[min(self.step, len(backoff) - 1)]
        self.step += 1
        self.total += 1
        if not self.blocked:
            self.since = now
        self.blocked = True
        self.probing = False
        self.reason = reason
        self._last_block = now
        return True

    def may_probe(self, now: float) -> bool:
        return self.blocked and not self.probing and now >= self.probe_at

    def start_probe(self) -> None:
        self.probing = True

    def probe_abandoned(self) -> None:
        """The probe connection carried no mail (the lane ran dry): probe again later."""
        self.probing = False

    def resume(self) -> None:
        """The probe went through: the block is over (its step is kept for the next one)."""
        self.blocked = False
        self.probing = False

    def seconds_blocked(self, now: float) -> float:
        """How long this run of blocks has lasted (0 when not blocked)."""
        return now - self.since if self.blocked else 0.0

    def seconds_to_probe(self, now: float) -> float:
        return max(0.0, self.probe_at - now)
