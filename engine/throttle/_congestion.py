"""Congestion and blocks inferred from what a site's replies do, not from their texts.

A carrier we have never seen is the normal case: docomo, au and SoftBank publish neither
thresholds nor reply texts. So one (egress address, site) is judged by the pattern of its
replies, per sending address, and the profile's text patterns are only hints on top:

- **Congestion**: 4xx replies (any code, any text) for *several different recipients* within a
  short window, any 4xx to MAIL (it names no recipient yet), a 421 anywhere, a connection
  reset in the middle of a session. A 4xx that repeats for one recipient only is that
  recipient's (greylisting, a full mailbox) and slows nobody down.
- **Connection trouble**: refused or reset connections and 4xx greetings. Many in a row with
  nothing delivered in between mean the site refuses this address altogether: a block.
- **Block**: what the site says to the connection (a 5xx greeting, a 5xx to MAIL, which names
  no recipient yet), or 5xx replies for several different recipients within seconds with
  nothing delivered in between — recipients the site was accepting moments before do not all
  become invalid at once. One recipient's 5xx is never a block, whatever its words ("rejected
  as spam", "sender blocked" are what a family's own filter says too): it is in doubt first,
  and the recipient's own once the site keeps accepting others.
- **Unsure**: a lone 4xx or 5xx that is neither about the recipient nor (yet) part of a
  pattern. The delivery is tried again later without counting an attempt; if the same
  recipient is refused again after the site has accepted other mail in between, the reply was
  the recipient's after all and is recorded as such (reclassified when the site answers
  normally).

Replies that concern only the recipient (unknown user, full mailbox) never count toward
congestion or a block: a 550 5.1.1 says nothing about the site.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from engine.throttle._feedback import Feedback, Outcome
from engine.throttle._replies import about_recipient


class Kind(enum.Enum):
    """What one reply means, read together with the replies before it."""

    SUCCESS = "success"
    RECIPIENT = "recipient"  # about the recipient only: record as it is
    CONGESTION = "congestion"  # we are too fast for this site from this address
    CONNECTION = "connection"  # a connection refused, reset at once, or greeted with 4xx
    BLOCK = "block"  # the site refuses this address
    UNSURE = "unsure"  # neither yet: try the delivery again without counting an attempt


class Verdict(enum.Enum):
    """What the runner does with the delivery whose reply was just recorded."""

    RECORD = "record"  # record the attempt as it is (delivered, about the recipient, ...)
    CONGESTION = "congestion"  # we were too fast: round again, no attempt counted
    UNSURE = "unsure"  # round again, no attempt counted; judged again at its next try
    BLOCK = "block"  # the site refuses this address: never the recipient's failure


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Thresholds of the detector, the same for every site."""

    window: float = 10.0  # s over which distinct recipients are counted
    congestion_recipients: int = 2  # distinct recipients with 4xx within window
    block_recipients: int = 3  # distinct recipients with 5xx within window, none delivered since
    refusals_to_block: int = 6  # connection failures in a row, nothing delivered between
    # Deliveries the site accepted since a recipient's previous doubtful refusal before a new
    # refusal of that recipient is taken as the recipient's own.
    accepted_before_reclassify: int = 3
    suspect_memory: float = 3600.0  # s a doubtful refusal is remembered
    max_suspects: int = 100_000


@dataclass
class _SourceWindow:
    """Recent doubtful replies at one site from one sending address."""

    soft: deque[tuple[float, str]] = field(default_factory=deque)
    hard: deque[tuple[float, str]] = field(default_factory=deque)
    refusals: int = 0  # connection failures since the last delivery


@dataclass
class _Suspect:
    hits: int
    accepted_at_hit: int
    at: float


class SiteReplies:
    """The reply history of one site, per sending address, and the recipients in doubt."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self.accepted = 0  # deliveries the site accepted, from any address
        self._sources: dict[str, _SourceWindow] = {}
        self._suspects: dict[str, _Suspect] = {}

    def read(
        self, source: str, fb: Feedback, now: float, *, hinted: bool = False,
        others_open: bool = False,
    ) -> Kind:
        """Classify one reply from ``source``; ``hinted``: the profile's texts say "slow
        down"; ``others_open``: other connections of this address to the site are open (a
        refusal then is about their number, never a block)."""
        win = self._sources.setdefault(source, _SourceWindow())
        code = fb.code
        if fb.outcome is Outcome.DELIVERED:
            self.accepted += 1
            win.refusals = 0
            # The site takes mail from this address: permanent refusals before this one were
            # about their recipients, not a block.
            win.hard.clear()
            return Kind.SUCCESS
        if code is None or fb.stage == "CONNECT":
            if code is not None and code >= 500:
                return Kind.BLOCK  # refused at the greeting with a 5xx
            if fb.stage not in ("", "CONNECT"):
                return Kind.CONGESTION  # dropped in the middle of a session
            if others_open:
                return Kind.CONNECTION
            win.refusals += 1
            if win.refusals >= self.settings.refusals_to_block:
                win.refusals = 0
                return Kind.BLOCK
            return Kind.CONNECTION
        if 400 <= code < 500:
            if code == 421 or hinted or fb.stage == "MAIL" or fb.outcome is Outcome.THROTTLED:
                return Kind.CONGESTION
            if self._distinct(win.soft, fb.recipient, now) >= self.settings.congestion_recipients:
                return Kind.CONGESTION
            return self._doubt(fb.recipient, now)
        if 500 <= code < 600:
            # Only permanent replies are exempted by their words: a 4xx such as "4.2.0 mailbox
            # temporarily unavailable" for many recipients at once is the site's congestion,
            # and the count of distinct recipients already spares a single one's trouble.
            if about_recipient(code, fb.status, fb.text):
                return Kind.RECIPIENT
            distinct = self._distinct(win.hard, fb.recipient, now)
            if fb.stage == "MAIL" or distinct >= self.settings.block_recipients:
                return Kind.BLOCK
            return self._doubt(fb.recipient, now)
        return Kind.RECIPIENT

    def _distinct(self, window: deque[tuple[float, str]], recipient: str, now: float) -> int:
        """Add the reply and count the distinct recipients refused within the window."""
        window.append((now, recipient))
        while window and now - window[0][0] > self.settings.window:
            window.popleft()
        return len({r for _, r in window})

    def _doubt(self, recipient: str, now: float) -> Kind:
        return Kind.RECIPIENT if self._reclassified(recipient, now) else Kind.UNSURE

    def _reclassified(self, recipient: str, now: float, min_hits: int = 1) -> bool:
        """Remember a doubtful refusal of ``recipient``; True when it was refused before and
        the site has accepted enough other mail since: the refusal is the recipient's."""
        if not recipient:
            return False
        s = self.settings
        suspect = self._suspects.get(recipient)
        if suspect is not None and now - suspect.at > s.suspect_memory:
            suspect = None
        if suspect is None:
            if len(self._suspects) >= s.max_suspects:
                self._forget(now)
            self._suspects[recipient] = _Suspect(1, self.accepted, now)
            return False
        own = (
            suspect.hits >= min_hits
            and self.accepted - suspect.accepted_at_hit >= s.accepted_before_reclassify
        )
        suspect.hits += 1
        suspect.accepted_at_hit = self.accepted
        suspect.at = now
        if own:
            del self._suspects[recipient]
        return own

    def _forget(self, now: float) -> None:
        """Drop old doubts, or the oldest half when all are recent (memory stays bounded)."""
        memory = self.settings.suspect_memory
        keep = {r: v for r, v in self._suspects.items() if now - v.at <= memory}
        if len(keep) >= self.settings.max_suspects:
            ordered = sorted(keep.items(), key=lambda item: item[1].at)
            keep = dict(ordered[len(ordered) // 2 :])
        self._suspects = keep
