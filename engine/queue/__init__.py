"""The PostgreSQL queue: fan-out, claim under a lease, retry, expiry and recovery."""

from engine.queue.broadcasts import (
    CANCEL_CHANNEL,
    BroadcastState,
    BroadcastSummary,
    Cancellation,
)
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
    "CANCEL_CHANNEL",
    "NOTIFY_CHANNEL",
    "AttemptResult",
    "BroadcastContent",
    "BroadcastCounts",
    "BroadcastState",
    "BroadcastSummary",
    "Cancellation",
    "ClaimedDelivery",
    "NewBroadcast",
    "Outcome",
    "Priority",
    "Queue",
    "State",
]
