"""The PostgreSQL queue: fan-out, claim under a lease, retry, expiry and recovery."""

from engine.queue.models import (
    AttemptResult,
    BroadcastContent,
    ClaimedDelivery,
    NewBroadcast,
    Outcome,
    Priority,
    State,
)
from engine.queue.store import NOTIFY_CHANNEL, BroadcastCounts, Queue

__all__ = [
    "NOTIFY_CHANNEL",
    "AttemptResult",
    "BroadcastContent",
    "BroadcastCounts",
    "ClaimedDelivery",
    "NewBroadcast",
    "Outcome",
    "Priority",
    "Queue",
    "State",
]
