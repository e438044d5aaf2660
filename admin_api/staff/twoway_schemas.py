"""The two-way part of the staff API's bodies: reads, survey totals and answers, reminders,
replies, absence/health reports and their settings; and the one conversion of a broadcast's
read-confirmation and question fields into the engine's request.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from admin_api.staff.schemas import BroadcastIn, QuestionIn, StrictIn, Text
from engine.twoway.asks import ReadPolicy
from engine.twoway.questions import Question, QuestionKind

ReportKindName = Literal["absence", "late", "early_leave", "health"]


def question_of(q: QuestionIn) -> Question:
    return Question(
        key=q.key, label=q.label, kind=QuestionKind(q.kind), required=q.required,
        options=tuple(q.options), minimum=q.minimum, maximum=q.maximum,
        max_length=q.max_length, unit=q.unit,
    )


def asking_fields(body: BroadcastIn) -> dict[str, Any]:
    """The keyword arguments of ``engine.staff.sending.BroadcastRequest`` for what the
    broadcast asks (``read``, ``questions``, ``deadline``, which its ``asks()`` turns into the
    fan-out's ``Asks``): the one place the API's fields are mapped."""
    read = body.read_confirmation
    return {
        "read": None if read is None else ReadPolicy(
            timedelta(minutes=read.remind_after_minutes), read.max_reminders
        ),
        "questions": tuple(question_of(q) for q in body.questions),
        "deadline": body.answer_deadline,
    }


class QuestionOut(BaseModel):
    key: str
    label: str
    kind: Literal["single", "multiple", "number", "text"]
    required: bool
    options: list[str]
    minimum: Decimal | None
    maximum: Decimal | None
    unit: str

    @classmethod
    def of(cls, q: Question) -> QuestionOut:
        return cls(key=q.key, label=q.label, kind=q.kind.value, required=q.required,
                   options=list(q.options), minimum=q.minimum, maximum=q.maximum, unit=q.unit)


class ClassReadsOut(BaseModel):
    class_id: int | None = Field(description="null: accounts without a class")
    grade: int | None
    class_name: str | None
    accounts: int
    read: int
    unread: int


class ReadsOut(BaseModel):
    broadcast_id: int
    accounts: int
    read: int
    unread: int
    classes: list[ClassReadsOut]


class AccountReadOut(BaseModel):
    account_id: int
    class_id: int | None
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    read_at: datetime | None = Field(description="null: not read")


class AccountReadPage(BaseModel):
    total: int
    items: list[AccountReadOut]


class QuestionTotalOut(BaseModel):
    question: QuestionOut
    answered: int
    options: list[int] = Field(description="answers per option, in the options' order")
    total: Decimal | None = Field(description="number questions: the sum (the head count)")


class SurveyTotalsOut(BaseModel):
    broadcast_id: int
    deadline: datetime
    respondents: int
    questions: list[QuestionTotalOut]


class ResponseOut(BaseModel):
    account_id: int | None
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    answered_at: datetime
    answers: dict[str, str] = Field(description="question key -> the answer in words")


class ResponsePage(BaseModel):
    total: int
    items: list[ResponseOut]


class RemindIn(StrictIn):
    purpose: Literal["read", "survey"] = Field(
        description="read: not read yet; survey: not answered yet"
    )
    subject: Text | None = Field(
        default=None, max_length=200, description="omitted: 【再通知】+ the first subject"
    )
    body: Text | None = Field(default=None, max_length=100_000, description="omitted: a note + "
                              "the first text")


class RemindOut(BaseModel):
    broadcast_id: int
    recipients: int
    left: int = Field(description="not reminded: they left since")
    summary_ja: str
    status_url: str


class ReplyOut(BaseModel):
    id: int
    delivery_id: int
    from_recipient: bool = Field(description="false: from another address than the one mailed")
    sender: str
    subject: str
    body: str = Field(description="the reply's text (plain text: escape it in any page)")
    received_at: datetime


class ReplyList(BaseModel):
    broadcast_id: int
    items: list[ReplyOut]


class ReportOut(BaseModel):
    id: int
    account_id: int
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    kind: ReportKindName
    kind_label_ja: str
    first_day: date
    last_day: date
    at_time: time | None = Field(
        None, description="lateness: expected arrival; early leave: leaving time (Japan time)"
    )
    reason: str | None
    note: str
    answers: dict[str, str]
    state: Literal["active", "withdrawn"]
    created_at: datetime
    updated_at: datetime


class ReportPageOut(BaseModel):
    total: int
    items: list[ReportOut]


class ReportCountOut(BaseModel):
    school_id: int
    new: int = Field(description="made or changed since the caller last marked them seen")
    seen_at: datetime | None


# Hours of the day in Japan time, as people write them: "06:00". (A JSON Schema "time" would
# need an offset, which a school's hours do not have.)
HourMinute = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


def hour_minute(t: time) -> str:
    return f"{t:%H:%M}"


class ReportSettingsIn(StrictIn):
    opens: HourMinute = Field(description="受付開始 (日本時間) HH:MM")
    closes: HourMinute = Field(description="受付終了 (日本時間) HH:MM; before opens: overnight")
    reasons: list[Annotated[Text, Field(max_length=50)]] = Field(min_length=1, max_length=50)
    health_questions: list[QuestionIn] = Field(default_factory=list, max_length=30)
    notify_teachers: bool = Field(
        default=False, description="担任に新しい連絡をメールで知らせる / mail class teachers"
    )


class ReportSettingsOut(BaseModel):
    school_id: int
    opens: HourMinute
    closes: HourMinute
    reasons: list[str]
    health_questions: list[QuestionOut]
    notify_teachers: bool


class NotifyAddressIn(StrictIn):
    address: Text | None = Field(
        max_length=254, description="新しい連絡のお知らせ先 / where new reports are announced; "
        "null: none"
    )


class NotifyAddressOut(BaseModel):
    staff_id: int
    has_address: bool
