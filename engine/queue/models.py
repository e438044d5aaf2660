"""The queue's values: priorities, delivery states, claimed deliveries and their outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Priority(enum.IntEnum):
    """Lower is sent first."""

    EMERGENCY = 0
    NORMAL = 1
    BULK = 2

    @classmethod
    def parse(cls, text: str) -> Priority:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {text!r} (choose one of: {names})") from None


class State(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    FAILED = "failed"


def tls_text(tls: bool | None) -> str:
    """Whether a delivery's latest attempt went over TLS, for people: 「あり」/「なし」, empty
    when no attempt reached a server."""
    return "" if tls is None else ("あり" if tls else "なし")


STATE_LABELS_JA: dict[State, str] = {
    State.QUEUED: "送信待ち",
    State.SENDING: "送信中",
    State.DEFERRED: "再送待ち",
    State.DELIVERED: "配信済み",
    State.FAILED: "配信失敗",
}


@dataclass(frozen=True)
class NewBroadcast:
    """What an operator asks to send; recipients are already normalised addresses."""

    sender: str
    subject: str
    body: str
    recipients: list[str]
    priority: Priority = Priority.NORMAL
    send_at: datetime | None = None
    # The From display name (○○小学校) and the Reply-To address; empty: none.
    sender_name: str = ""
    reply_to: str = ""


@dataclass(frozen=True)
class BroadcastContent:
    """What the runner needs to render one broadcast's mails."""

    id: int
    sender: str
    subject: str
    body: str
    priority: Priority
    sender_name: str = ""
    reply_to: str = ""
    # Each mail links to its recipient's personal page (read confirmation, answers, files).
    personal_page: bool = False


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    broadcast_id: int
    recipient: str
    domain: str
    attempts: int
    expires_at: datetime
    # The previous attempt's reply, kept when the delivery expires before another attempt.
    last_code: int | None = None
    last_status: str | None = None
    last_text: str | None = None
    priority: Priority = Priority.NORMAL


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"


@dataclass(frozen=True)
class AttemptResult:
    """The result of one attempt, as the runner hands it to the queue to record."""

    delivery_id: int
    outcome: Outcome
    attempted_at: datetime
    code: int | None = None
    status: str | None = None
    text: str = ""
    host: str | None = None
    reason: str | None = None
    # For DEFERRED: when to try again. The runner decides, using engine.queue.retry.
    next_attempt_at: datetime | None = None
    # False when the attempt did not reach the recipient's server through our own doing
    # (e.g. our shutdown): it does not count toward the delivery's attempts.
    counts: bool = True
    # The operator category of the reason (engine.bounce.classify.categories),
    # for failures/deferrals.
    category: str | None = None
    # Whether the attempt's connection was encrypted (STARTTLS); None: no session, or unknown.
    tls: bool | None = None
